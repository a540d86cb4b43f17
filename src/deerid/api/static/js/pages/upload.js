// Upload: photos (and optionally their MegaDetector JSON), then the ingest's progress and summary.

import { get, upload } from "../api.js";
import { busy, clear, h, notifyError, plural } from "../ui.js";

const PHOTO = /\.(jpe?g|png)$/i;
const POLL_MS = 1000;

function size(bytes) {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}

function bar(id, label, done, total) {
  const pct = total ? Math.min(100, Math.round((done / total) * 100)) : 0;
  const fill = h("div", { class: "bar-fill" });
  fill.style.width = `${pct}%`;
  return h(
    "div",
    { class: "progress-row" },
    h("div", { class: "progress-label" }, h("span", {}, label), h("span", { class: "muted" }, total ? `${done} / ${total} · ${pct}%` : "waiting…")),
    h(
      "div",
      { class: "progress", id, role: "progressbar", "aria-label": label, "aria-valuemin": 0, "aria-valuemax": total || 0, "aria-valuenow": done || 0 },
      fill,
    ),
  );
}

export async function uploadPage(view, { navigate }) {
  const photos = h("input", { type: "file", id: "up-photos", multiple: true, accept: ".jpg,.jpeg,.png,image/jpeg,image/png" });
  const detections = h("input", { type: "file", id: "up-detections", accept: ".json,application/json" });
  const chosen = h("p", { class: "muted small", id: "up-chosen" }, "No photos chosen.");
  const send = h("button", { type: "submit", class: "btn primary", id: "up-send", disabled: true }, "Upload");
  const status = h("section", { class: "panel upload-status", id: "up-status", hidden: true });
  let timer = null;
  let stopped = false;

  const usable = () => [...photos.files].filter((f) => PHOTO.test(f.name));
  photos.addEventListener("change", () => {
    const files = usable();
    const skipped = photos.files.length - files.length;
    const bytes = files.reduce((n, f) => n + f.size, 0);
    chosen.textContent = files.length
      ? `${plural(files.length, "photo")}, ${size(bytes)}${skipped ? ` (${skipped} other ${skipped === 1 ? "file" : "files"} left out)` : ""}`
      : "No photos chosen.";
    send.disabled = !files.length;
  });

  const form = h(
    "form",
    { class: "panel upload-form", id: "up-form" },
    h("div", { class: "field" }, h("label", { for: "up-photos" }, "Photos (JPEG or PNG; choose many at once)"), photos, chosen),
    h(
      "div",
      { class: "field" },
      h("label", { for: "up-detections" }, "MegaDetector output (optional)"),
      detections,
      h("p", { class: "muted small" }, "The batch JSON for these photos. Without it deerid runs its own detector, which is slower."),
    ),
    h("div", { class: "form-actions" }, send),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const files = usable();
    if (!files.length) return;
    const data = new FormData();
    for (const f of files) data.append("files", f, f.name);
    if (detections.files[0]) data.append("detections", detections.files[0], detections.files[0].name);
    status.hidden = false;
    const sent = (loaded, total) =>
      clear(
        status,
        h("h2", {}, "Sending photos"),
        bar("up-bytes", "Megabytes sent", Math.round(loaded / 1024 / 1024), Math.round(total / 1024 / 1024) || 1),
        h("p", { class: "muted small" }, "Keep this page open until the photos are sent."),
      );
    sent(0, 1);
    try {
      const job = await busy(send, upload("/api/uploads", data, sent));
      history.replaceState(null, "", `/upload?id=${encodeURIComponent(job.id)}`);
      form.reset();
      chosen.textContent = "No photos chosen.";
      send.disabled = true;
      track(job.id, job);
    } catch (err) {
      clear(status, h("h2", {}, "Upload failed"), h("p", { class: "error-box", role: "alert" }, err.message));
      notifyError(err, "Upload failed: ");
    }
  });

  clear(
    view,
    h("div", { class: "page-head" }, h("h1", {}, "Upload photos")),
    h(
      "p",
      { class: "muted" },
      "Photos from a trail-camera card: deerid finds the deer in them, tells the individuals apart and adds the sightings to their profiles.",
    ),
    form,
    status,
  );

  function drawJob(job) {
    status.hidden = false;
    const s = job.status;
    const title =
      {
        queued: "Photos received, waiting to start",
        running: "Working on the photos",
        done: "Finished",
        failed: "The ingest stopped",
        interrupted: "Interrupted",
      }[s] || "Upload";
    const parts = [h("h2", {}, title, h("span", { class: `badge status-${s}`, id: "up-state" }, s))];
    if (s === "queued" || s === "running") {
      parts.push(bar("up-photos-bar", "Photos stored", job.photos_done || 0, job.photos_total || 0));
      // The second bar counts whichever pass runs: the info strips first, then re-identification.
      const second = job.stage === "info strips" ? "Info strips read" : "Deer boxes re-identified";
      if (job.reid_total !== undefined) parts.push(bar("up-reid-bar", second, job.reid_done || 0, job.reid_total || 0));
    }
    if (s === "done") {
      const r = job.report || {};
      const rows = [
        ["Photos", r.photos ?? job.photos_total],
        ["New photos", r.photos_new],
        ["Already stored", r.photos_existing],
        ["Detections", job.detections ?? r.detections],
        ["Deer boxes re-identified", job.reidentified ?? r.reidentified],
        ["Matched to a known deer", job.matched ?? r.matched],
        ["New deer", job.new_deer ?? r.new_deer],
        ["Failed", r.failed],
      ].filter(([, v]) => v !== undefined && v !== null);
      parts.push(
        h(
          "table",
          { class: "table summary-table", id: "up-summary" },
          h(
            "tbody",
            {},
            rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "num" }, String(v)))),
          ),
        ),
        r.skipped && r.skipped.length
          ? h(
              "details",
              {},
              h("summary", {}, `${plural(r.skipped.length, "file")} skipped`),
              h(
                "ul",
                {},
                r.skipped.map((x) => h("li", {}, `${x.file}: ${x.reason}`)),
              ),
            )
          : null,
        h(
          "p",
          { class: "actions" },
          h("a", { href: "/?sort=created", class: "btn primary" }, "See the deer"),
          h("a", { href: "/review", class: "btn" }, "Review close calls"),
          h("button", { type: "button", class: "btn", onclick: () => navigate("/upload", { replace: true }) }, "Upload more"),
        ),
      );
    }
    if (s === "failed") parts.push(h("p", { class: "error-box", role: "alert" }, job.error || "The ingest failed without saying why."));
    if (s === "interrupted")
      parts.push(
        h(
          "p",
          { class: "error-box", role: "alert" },
          "The server stopped while it worked on this upload. The photos are stored; ",
          h("code", {}, "deerid reid --all"),
          " finishes their deer.",
        ),
      );
    clear(status, parts);
  }

  function track(id, first) {
    if (first) drawJob(first);
    const poll = async () => {
      if (stopped) return;
      let job;
      try {
        job = await get(`/api/uploads/${encodeURIComponent(id)}`);
      } catch (err) {
        clear(status, h("h2", {}, "Cannot follow this upload"), h("p", { class: "error-box", role: "alert" }, err.message));
        return;
      }
      if (stopped) return;
      drawJob(job);
      if (job.status === "queued" || job.status === "running") timer = setTimeout(poll, POLL_MS);
    };
    timer = setTimeout(poll, first ? POLL_MS : 0);
  }

  const resume = new URLSearchParams(location.search).get("id");
  if (resume) track(resume, null);

  return {
    cleanup: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
