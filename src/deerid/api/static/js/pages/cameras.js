// Cameras: name, position and clock offset of each, edited in place.

import { del, get, patch, post, token, tokenSource } from "../api.js";
import { busy, clear, emptyState, h, notify, notifyError, plural } from "../ui.js";

function offsetWords(seconds) {
  const s = Number(seconds) || 0;
  if (!s) return "clock right";
  const sign = s > 0 ? "+" : "−";
  let rest = Math.abs(s);
  const parts = [];
  for (const [unit, size] of [
    ["d", 86400],
    ["h", 3600],
    ["min", 60],
    ["s", 1],
  ]) {
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
  const head = h(
    "div",
    { class: "page-head" },
    h("h1", {}, "Cameras"),
    h("p", { class: "muted summary" }, cameras.length ? plural(cameras.length, "camera") : " "),
  );
  if (!cameras.length) {
    clear(
      view,
      head,
      emptyState("No cameras yet", "Cameras appear when their photos are ingested.", h("a", { href: "/upload", class: "btn primary" }, "Upload photos")),
    );
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
    await deploymentSection(cameras),
    exportSection(),
  );

  function row(cam) {
    let saved = cam;
    const id = (f) => `cam-${cam.id}-${f}`;
    const name = h("input", { id: id("name"), value: cam.name, required: true, maxlength: 200, "aria-label": "Name" });
    const lat = h("input", {
      id: id("lat"),
      type: "number",
      step: "any",
      min: -90,
      max: 90,
      value: cam.latitude ?? "",
      placeholder: "—",
      "aria-label": "Latitude",
    });
    const lon = h("input", {
      id: id("lon"),
      type: "number",
      step: "any",
      min: -180,
      max: 180,
      value: cam.longitude ?? "",
      placeholder: "—",
      "aria-label": "Longitude",
    });
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

// Downloads of every sighting: the server streams them, so a large database is never held in memory.
function exportSection() {
  let zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch {
    zone = "";
  }
  const tz = h("input", { id: "export-timezone", value: zone, placeholder: "e.g. America/Chicago", maxlength: 64, "aria-label": "The cameras' timezone" });
  const link = (id, path, label, name) => {
    const a = h("a", { id, class: "btn small", href: "#", download: name }, label);
    a.addEventListener("click", async (e) => {
      const url = tz.value.trim() ? `${path}?timezone=${encodeURIComponent(tz.value.trim())}` : path;
      if (tokenSource() === "server") {
        a.href = url; // this machine: a plain download, streamed by the browser
        return;
      }
      // Another machine: the download needs the token, which a plain link cannot send.
      e.preventDefault();
      try {
        const response = await fetch(url, { headers: { Authorization: `Bearer ${token()}` } });
        if (!response.ok) throw new Error(`${response.status} ${(await response.text()).slice(0, 200)}`);
        const blob = URL.createObjectURL(await response.blob());
        const save = h("a", { href: blob, download: name });
        document.body.append(save);
        save.click();
        save.remove();
        setTimeout(() => URL.revokeObjectURL(blob), 60000);
      } catch (err) {
        notifyError(err, "Could not export: ");
      }
    });
    return a;
  };
  return h(
    "section",
    { class: "export", id: "export" },
    h("h2", {}, "Export"),
    h(
      "p",
      { class: "muted small" },
      "Every sighting as a CSV, or a Camtrap DP package (a zip) for analysis tools. Camtrap DP needs coordinates for every photo: from its deployment, else its camera's. Times are written in this timezone:",
    ),
    h(
      "p",
      {},
      tz,
      " ",
      link("export-csv", "/api/export/csv", "Sightings (CSV)", "deerid-sightings.csv"),
      " ",
      link("export-camtrap", "/api/export/camtrap-dp", "Camtrap DP (zip)", "deerid-camtrap-dp.zip"),
    ),
  );
}

// Deployments: where each camera stood between two dates. Camtrap DP describes every photo through one.
async function deploymentSection(cameras) {
  const list = h("tbody", {});
  const fill = async () => {
    const deployments = await get("/api/deployments");
    clear(
      list,
      deployments.length
        ? deployments.map((d) => {
            const remove = h("button", { type: "button", class: "btn small", dataset: { deployment: d.id } }, "Delete");
            remove.addEventListener("click", async () => {
              try {
                await busy(remove, del(`/api/deployments/${d.id}`));
                notify(`Deleted the deployment of ${d.camera}.`);
                await fill();
              } catch (err) {
                notifyError(err, "Could not delete: ");
              }
            });
            return h(
              "tr",
              { dataset: { deployment: d.id } },
              h("td", {}, d.camera),
              h("td", {}, d.location || "—"),
              h("td", {}, d.start_at.replace("T", " ")),
              h("td", {}, d.end_at ? d.end_at.replace("T", " ") : "still out"),
              h("td", { class: "num" }, String(d.latitude)),
              h("td", { class: "num" }, String(d.longitude)),
              h("td", { class: "num" }, String(d.photos)),
              h("td", {}, remove),
            );
          })
        : h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No deployments yet: each camera counts as one, without a place, until you add them.")),
    );
  };
  await fill();

  const camera = h(
    "select",
    { id: "dep-camera", "aria-label": "Camera" },
    cameras.map((c) => h("option", { value: c.id }, c.name)),
  );
  const location = h("input", { id: "dep-location", placeholder: "Place (optional)", maxlength: 200, "aria-label": "Place" });
  const start = h("input", { id: "dep-start", type: "datetime-local", step: 1, required: true, "aria-label": "From" });
  const end = h("input", { id: "dep-end", type: "datetime-local", step: 1, "aria-label": "Until (empty: still out)" });
  const lat = h("input", { id: "dep-lat", type: "number", step: "any", min: -90, max: 90, required: true, placeholder: "Latitude", "aria-label": "Latitude" });
  const lon = h("input", {
    id: "dep-lon",
    type: "number",
    step: "any",
    min: -180,
    max: 180,
    required: true,
    placeholder: "Longitude",
    "aria-label": "Longitude",
  });
  const add = h("button", { type: "submit", class: "btn primary small", id: "dep-add" }, "Add deployment");
  const seconds = (v) => (v && v.length === 16 ? `${v}:00` : v);
  const form = h("form", { class: "deployment-form", id: "deployment-form" }, camera, location, start, end, lat, lon, add);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = {
      camera_id: Number(camera.value),
      location: location.value.trim() || null,
      start_at: seconds(start.value),
      end_at: end.value ? seconds(end.value) : null,
      latitude: lat.value.trim() === "" ? null : Number(lat.value),
      longitude: lon.value.trim() === "" ? null : Number(lon.value),
    };
    try {
      await busy(add, post("/api/deployments", body));
      notify("Deployment added.");
      form.reset();
      await fill();
    } catch (err) {
      notifyError(err, "Could not add the deployment: ");
    }
  });
  return h(
    "section",
    { class: "deployments", id: "deployments" },
    h("h2", {}, "Deployments"),
    h(
      "p",
      { class: "muted small" },
      "A deployment is a camera at a place between two dates (the cameras' local time); photos belong to the one whose dates hold them, after the clock offset. Or import many: deerid deployments import FILE.csv.",
    ),
    h(
      "table",
      { class: "table deployments-table", id: "deployments-table" },
      h("thead", {}, h("tr", {}, ...["Camera", "Place", "From", "Until", "Latitude", "Longitude", "Photos", ""].map((t) => h("th", {}, t)))),
      list,
    ),
    form,
  );
}
