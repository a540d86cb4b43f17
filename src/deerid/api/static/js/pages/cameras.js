// Cameras: name, position and clock offset of each, edited in place.

import { get, patch } from "../api.js";
import { busy, clear, emptyState, h, notify, notifyError, plural } from "../ui.js";

function offsetWords(seconds) {
  const s = Number(seconds) || 0;
  if (!s) return "clock right";
  const sign = s > 0 ? "+" : "−";
  let rest = Math.abs(s);
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]]) {
    const n = Math.floor(rest / size);
    if (n) parts.push(`${n} ${unit}`);
    rest -= n * size;
  }
  return `${sign}${parts.join(" ")}`;
}

function numberOrNull(input) {
  const v = input.value.trim();
  return v === "" ? null : Number(v);
}

export async function cameraPage(view) {
  const cameras = await get("/api/cameras");
  const head = h("div", { class: "page-head" }, h("h1", {}, "Cameras"), h("p", { class: "muted summary" }, cameras.length ? plural(cameras.length, "camera") : " "));
  if (!cameras.length) {
    clear(view, head, emptyState("No cameras yet", "Cameras appear when their photos are ingested.", h("a", { href: "/upload", class: "btn primary" }, "Upload photos")));
    return;
  }
  const rows = cameras.map(row);
  clear(
    view,
    head,
    h(
      "p",
      { class: "muted small" },
      "The clock offset is added to every capture time of the camera (seconds; negative if its clock runs ahead), so sightings of several cameras line up. Latitude and longitude are decimal degrees.",
    ),
    h(
      "table",
      { class: "table cameras", id: "cameras" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", {}, "Name"),
          h("th", {}, "Make / model"),
          h("th", { class: "num" }, "Photos"),
          h("th", {}, "Latitude"),
          h("th", {}, "Longitude"),
          h("th", {}, "Clock offset (s)"),
          h("th", {}, ""),
        ),
      ),
      h("tbody", {}, rows),
    ),
  );

  function row(cam) {
    let saved = cam;
    const id = (f) => `cam-${cam.id}-${f}`;
    const name = h("input", { id: id("name"), value: cam.name, required: true, maxlength: 200, "aria-label": "Name" });
    const lat = h("input", { id: id("lat"), type: "number", step: "any", min: -90, max: 90, value: cam.latitude ?? "", placeholder: "—", "aria-label": "Latitude" });
    const lon = h("input", { id: id("lon"), type: "number", step: "any", min: -180, max: 180, value: cam.longitude ?? "", placeholder: "—", "aria-label": "Longitude" });
    const offset = h("input", { id: id("offset"), type: "number", step: 1, value: cam.clock_offset_s, "aria-label": "Clock offset in seconds" });
    const offsetHint = h("span", { class: "muted small offset-hint" }, offsetWords(cam.clock_offset_s));
    const save = h("button", { type: "button", class: "btn primary small", id: id("save"), disabled: true }, "Save");
    const status = h("span", { class: "small row-status", role: "status" });

    const changes = () => {
      const out = {};
      if (name.value.trim() !== saved.name) out.name = name.value.trim();
      if (numberOrNull(lat) !== saved.latitude) out.latitude = numberOrNull(lat);
      if (numberOrNull(lon) !== saved.longitude) out.longitude = numberOrNull(lon);
      const off = offset.value.trim() === "" ? 0 : Number(offset.value);
      if (off !== saved.clock_offset_s) out.clock_offset_s = off;
      return out;
    };
    const update = () => {
      save.disabled = !Object.keys(changes()).length;
      offsetHint.textContent = offsetWords(offset.value);
      status.textContent = "";
    };
    const tr = h(
      "tr",
      { dataset: { camera: cam.id } },
      h("td", {}, name),
      h("td", { class: "muted" }, [cam.make, cam.model].filter(Boolean).join(" ") || "—"),
      h("td", { class: "num" }, String(cam.photos)),
      h("td", {}, lat),
      h("td", {}, lon),
      h("td", {}, offset, offsetHint),
      h("td", {}, save, status),
    );
    for (const input of [name, lat, lon, offset]) {
      input.addEventListener("input", update);
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          submit();
        }
      });
    }
    save.addEventListener("click", submit);

    async function submit() {
      const body = changes();
      if (!Object.keys(body).length) return;
      for (const [key, value] of Object.entries(body)) {
        if (typeof value === "number" && !Number.isFinite(value)) {
          notifyError(new Error(`${key.replace("_s", "")} is not a number.`), `Could not save ${saved.name}: `);
          return;
        }
      }
      if (body.clock_offset_s !== undefined && !Number.isInteger(body.clock_offset_s)) {
        notifyError(new Error("the clock offset is whole seconds."), `Could not save ${saved.name}: `);
        return;
      }
      try {
        saved = await busy(save, patch(`/api/cameras/${cam.id}`, body));
        name.value = saved.name;
        lat.value = saved.latitude ?? "";
        lon.value = saved.longitude ?? "";
        offset.value = saved.clock_offset_s;
        update();
        status.textContent = "Saved ✓";
        notify(`Saved camera ${saved.name}.`);
      } catch (err) {
        status.textContent = "";
        notifyError(err, `Could not save ${saved.name}: `);
      }
      save.disabled = !Object.keys(changes()).length;
    }
    return tr;
  }
}
