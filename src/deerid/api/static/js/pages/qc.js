// QC mode: one deer's sightings, worst-fitting first, so a wrong one can be split off as a new deer.
// Keys: → / ← move, x splits the sighting off, u puts the last split back, f the whole photo, Esc leaves.

import { get, post } from "../api.js";
import { clear, cropFigure, emptyState, errorBox, h, notify, notifyError, plural, sexBadge, showPhoto } from "../ui.js";

function fitWords(fit) {
  return fit === null || fit === undefined ? "—" : Number(fit).toFixed(3);
}

export async function qcPage(view, deerId, { navigate }) {
  let data = null; // {deer, sightings: [Crop + fit]} as loaded: the walk keeps this order
  let pos = 0;
  let working = false;
  const split = new Map(); // detection id → the new deer it founded
  const splitOrder = []; // detection ids, most recent last: what `u` puts back

  document.title = "Check sightings · deerid";
  const counter = h("p", { class: "muted summary", id: "qc-count" }, " ");
  const title = h("h1", { id: "qc-title" }, "Check sightings");
  const stage = h("div", { class: "qc-stage", id: "qc" });
  clear(
    view,
    h(
      "div",
      { class: "page-head" },
      title,
      counter,
      h("span", { class: "nav-spacer" }),
      h("a", { href: `/deer/${deerId}`, class: "btn", id: "qc-leave" }, "Done ", h("kbd", {}, "Esc")),
    ),
    stage,
    h(
      "p",
      { class: "muted small keys" },
      "Keys: ",
      h("kbd", {}, "←"),
      " ",
      h("kbd", {}, "→"),
      " previous / next sighting · ",
      h("kbd", {}, "x"),
      " split it off as a new deer · ",
      h("kbd", {}, "u"),
      " put the last split back · ",
      h("kbd", {}, "f"),
      " whole photo · ",
      h("kbd", {}, "Esc"),
      " back to the deer",
    ),
  );

  const kept = () => data.sightings.filter((s) => !split.has(s.detection_id));

  function draw() {
    const { deer, sightings } = data;
    clear(title, "Check sightings of ", h("a", { href: `/deer/${deer.id}` }, deer.name), " ", sexBadge(deer.sex));
    counter.textContent = sightings.length ? `${pos + 1} of ${sightings.length} · worst-fitting first${split.size ? ` · ${split.size} split off` : ""}` : " ";
    if (sightings.length < 2) {
      clear(
        stage,
        emptyState(
          "Nothing to check",
          `${deer.name} has ${plural(sightings.length, "sighting")}: there is nothing to compare it with.`,
          h("a", { href: `/deer/${deer.id}`, class: "btn" }, "Back to the deer"),
        ),
      );
      return;
    }
    const s = sightings[pos];
    const newDeer = split.get(s.detection_id);
    // the sightings that fit best stand for the deer: compare the current one with them
    const reference = kept()
      .filter((x) => x.detection_id !== s.detection_id)
      .slice(-6)
      .reverse();

    const current = h(
      "section",
      { class: `panel qc-current${newDeer ? " is-split" : ""}`, id: "qc-current", dataset: { detection: s.detection_id, state: newDeer ? "split" : "kept" } },
      h(
        "h2",
        {},
        `Sighting ${pos + 1}`,
        h(
          "span",
          { class: "qc-fit", title: "How well this sighting matches the rest of the deer: the lower, the likelier it is another deer" },
          "fit ",
          h("strong", { id: "qc-fit" }, fitWords(s.fit)),
        ),
      ),
      cropFigure(s, { cls: "qc-crop", alt: `sighting ${s.detection_id}` }),
      newDeer
        ? h(
            "p",
            { class: "split-note", id: "qc-split-note" },
            h("span", {}, "Split off as a new deer: ", h("a", { href: `/deer/${newDeer.id}` }, newDeer.name), "."),
            h("button", { type: "button", class: "btn small", id: "qc-put-back", onclick: () => putBack(s.detection_id) }, "Put it back"),
          )
        : null,
    );
    const others = h(
      "section",
      { class: "panel qc-reference" },
      h("h2", {}, `The rest of ${deer.name}, best-fitting first`),
      reference.length
        ? h(
            "div",
            { class: "qc-ref-crops" },
            reference.map((x) => cropFigure(x, { cls: "qc-ref", alt: `sighting ${x.detection_id}` })),
          )
        : h("p", { class: "muted" }, "No other sighting is left in this deer."),
    );
    const actions = h(
      "div",
      { class: "decide" },
      h("button", { type: "button", class: "btn", id: "qc-prev", disabled: pos === 0, onclick: () => move(-1) }, "← Previous"),
      h(
        "button",
        {
          type: "button",
          class: "btn primary",
          id: "qc-split",
          disabled: Boolean(newDeer),
          onclick: () => splitOff(),
          title: "This sighting is another deer: split it off into a new one",
        },
        "Not this deer: split off ",
        h("kbd", {}, "x"),
      ),
      h("button", { type: "button", class: "btn", id: "qc-next", disabled: pos >= sightings.length - 1, onclick: () => move(1) }, "Next →"),
    );
    const strip = h(
      "ol",
      { class: "qc-strip", id: "qc-strip", "aria-label": "All sightings, worst-fitting first" },
      sightings.map((x, i) => {
        const b = h(
          "button",
          {
            type: "button",
            class: `qc-thumb${i === pos ? " current" : ""}${split.has(x.detection_id) ? " split" : ""}`,
            "aria-current": i === pos ? "true" : null,
            title: `Sighting ${i + 1}, fit ${fitWords(x.fit)}${split.has(x.detection_id) ? " (split off)" : ""}`,
            dataset: { detection: x.detection_id },
          },
          h("img", { class: "crop", src: x.crop_url, alt: "", loading: "lazy", decoding: "async" }),
          h("span", { class: "qc-thumb-fit" }, fitWords(x.fit)),
        );
        b.addEventListener("click", () => {
          pos = i;
          draw();
        });
        return h("li", {}, b);
      }),
    );
    clear(stage, actions, strip, h("div", { class: "qc-layout" }, current, others));
  }

  function move(d) {
    const next = Math.max(0, Math.min(data.sightings.length - 1, pos + d));
    if (next !== pos) {
      pos = next;
      draw();
    }
  }

  async function splitOff() {
    const s = data.sightings[pos];
    if (working || !s || split.has(s.detection_id)) return;
    if (kept().length <= 1) {
      notify("This is the deer's last sighting: there is nothing to split it from.", { kind: "error" });
      return;
    }
    working = true;
    try {
      const out = await post("/api/detections/move", { detection_ids: [s.detection_id], to_deer: null });
      split.set(s.detection_id, out.deer);
      splitOrder.push(s.detection_id);
      const note = notify("Split off as a new deer: ");
      note.querySelector(".notice-text").append(h("a", { href: `/deer/${out.deer.id}` }, out.deer.name), ".");
      if (pos < data.sightings.length - 1) pos += 1;
      draw();
    } catch (err) {
      notifyError(err, "Could not split it off: ");
    } finally {
      working = false;
    }
  }

  async function putBack(detectionId) {
    if (working || !split.has(detectionId)) return;
    working = true;
    try {
      await post("/api/detections/move", { detection_ids: [detectionId], to_deer: deerId });
      split.delete(detectionId);
      splitOrder.splice(splitOrder.indexOf(detectionId), 1);
      notify(`Put back into ${data.deer.name}.`);
      pos = data.sightings.findIndex((x) => x.detection_id === detectionId);
      draw();
    } catch (err) {
      notifyError(err, "Could not put it back: ");
    } finally {
      working = false;
    }
  }

  function onKey(e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    if (document.querySelector("dialog[open]")) return; // Esc there closes the photo, not the mode
    const t = e.target;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    if (!data) return;
    let handled = true;
    if (e.key === "ArrowRight") move(1);
    else if (e.key === "ArrowLeft") move(-1);
    else if (e.key === "x" || e.key === "X") splitOff();
    else if (e.key === "u" || e.key === "U") {
      if (splitOrder.length) putBack(splitOrder[splitOrder.length - 1]);
    } else if (e.key === "f" || e.key === "F") {
      if (data.sightings[pos]) showPhoto(data.sightings[pos]);
    } else if (e.key === "Escape") navigate(`/deer/${deerId}`);
    else handled = false;
    if (handled) e.preventDefault();
  }
  document.addEventListener("keydown", onKey);

  clear(stage, h("p", { class: "muted" }, "Loading…"));
  try {
    data = await get(`/api/deer/${deerId}/qc`);
  } catch (err) {
    if (err.status === 404)
      clear(
        stage,
        emptyState(
          "This deer is gone",
          "It was merged into another deer or all its sightings were moved.",
          h("a", { href: "/", class: "btn" }, "Back to all deer"),
        ),
      );
    else
      clear(
        stage,
        errorBox(err, () => navigate(location.pathname + location.search, { replace: true })),
      );
    return { cleanup: () => document.removeEventListener("keydown", onKey) };
  }
  draw();
  return { cleanup: () => document.removeEventListener("keydown", onKey) };
}
