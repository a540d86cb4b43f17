// Review: the close calls one at a time, decided with buttons or keys.

import { get, post, query } from "../api.js";
import { busy, clear, crop, emptyState, errorBox, h, notify, notifyError, plural, similarity, when } from "../ui.js";
import { pickDeer } from "./deer.js";

const KIND = {
  match: {
    label: "Close match",
    explain: (item) => `The sighting was matched to ${item.candidate_deer.name}, only just above the threshold. Is it the same deer?`,
  },
  near_miss: {
    label: "Near miss",
    explain: (item) =>
      `The sighting founded a deer of its own (${item.current_deer.name}), only just below the threshold for ${item.candidate_deer.name}. Is it ${item.candidate_deer.name}?`,
  },
};

export async function reviewPage(view) {
  const params = new URLSearchParams(location.search);
  let band = ["0.02", "0.05", "0.1", "0.2"].includes(params.get("band")) ? params.get("band") : "0.05";
  let queue = [];
  let pos = 0;
  let deciding = false;
  let decided = 0;
  const done = new Set(); // decided here: kept out even if a read overtakes the decision's commit

  const bandSelect = h(
    "select",
    { id: "band", "aria-label": "How close to the threshold" },
    ["0.02", "0.05", "0.1", "0.2"].map((b) => h("option", { value: b }, `± ${b}`)),
  );
  bandSelect.value = band;
  bandSelect.addEventListener("change", () => {
    band = bandSelect.value;
    history.replaceState(null, "", band === "0.05" ? "/review" : `/review?band=${band}`);
    pos = 0;
    fetchQueue();
  });
  const counter = h("p", { class: "muted summary", id: "review-count" }, " ");
  const stage = h("div", { class: "review-stage", id: "review" });

  clear(
    view,
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "Review"),
      counter,
      h("span", { class: "nav-spacer" }),
      h("label", { for: "band", class: "inline" }, "Similarity band around the threshold"),
      bandSelect,
    ),
    stage,
    h(
      "p",
      { class: "muted small keys" },
      "Keys: ",
      h("kbd", {}, "c"),
      " confirm · ",
      h("kbd", {}, "r"),
      " reject · ",
      h("kbd", {}, "n"),
      " new deer · ",
      h("kbd", {}, "o"),
      " other deer… · ",
      h("kbd", {}, "←"),
      " ",
      h("kbd", {}, "→"),
      " previous / skip",
    ),
  );

  async function fetchQueue() {
    stage.setAttribute("aria-busy", "true");
    try {
      queue = (await get(`/api/review${query({ band, limit: 200 })}`)).filter((i) => !done.has(i.detection_id));
    } catch (err) {
      clear(stage, errorBox(err, fetchQueue));
      counter.textContent = " ";
      return;
    } finally {
      stage.removeAttribute("aria-busy");
    }
    pos = Math.min(pos, Math.max(queue.length - 1, 0));
    show();
  }

  function show() {
    const more = queue.length === 200 ? "+" : "";
    counter.textContent = queue.length
      ? `${pos + 1} of ${queue.length}${more} to review${decided ? ` · ${decided} decided` : ""}`
      : decided
        ? `${decided} decided`
        : " ";
    if (!queue.length) {
      clear(
        stage,
        emptyState(
          "Nothing to review",
          decided
            ? "Every close call in this band is decided."
            : "No sighting sits close to the matching threshold. Widen the band to see calls further from it.",
          h("a", { href: "/", class: "btn" }, "Back to the deer"),
        ),
      );
      return;
    }
    const item = queue[pos];
    const kind = KIND[item.kind] || { label: item.kind, explain: () => "" };
    const candidateCrops = item.candidate_crops.length ? item.candidate_crops : [item.candidate_deer.crop_url].filter(Boolean);
    const isMatch = item.kind === "match";
    clear(
      stage,
      h(
        "div",
        { class: "review-item", dataset: { detection: item.detection_id, kind: item.kind } },
        h(
          "div",
          { class: "review-head" },
          h("span", { class: `badge kind-${item.kind}` }, kind.label),
          h("span", { class: "similarity" }, "similarity ", h("strong", { id: "review-similarity" }, similarity(item.similarity))),
          h("p", { class: "explain" }, kind.explain(item)),
        ),
        h(
          "div",
          { class: "review-panes" },
          h(
            "div",
            { class: "panel pane" },
            h("h2", {}, "This sighting"),
            crop(item.crop_url, `Sighting ${item.detection_id}`, { cls: "crop big", lazy: false }),
            h("p", { class: "muted small" }, "now in ", h("a", { href: `/deer/${item.current_deer.id}` }, item.current_deer.name), ` · ${plural(item.current_deer.sighting_count, "sighting")}`),
          ),
          h(
            "div",
            { class: "panel pane" },
            h("h2", {}, "Candidate: ", h("a", { href: `/deer/${item.candidate_deer.id}` }, item.candidate_deer.name)),
            h(
              "div",
              { class: `candidate-crops n${Math.min(candidateCrops.length, 6)}` },
              candidateCrops.length
                ? candidateCrops.map((u, i) => crop(u, `${item.candidate_deer.name}, sighting ${i + 1}`))
                : h("p", { class: "muted" }, "No other sighting of this deer to compare with."),
            ),
            h(
              "p",
              { class: "muted small" },
              `${plural(item.candidate_deer.sighting_count, "sighting")} · last seen ${when(item.candidate_deer.last_seen, { time: false })}`,
            ),
          ),
        ),
        h(
          "div",
          { class: "decide" },
          button("confirm", "c", "Confirm", `Same deer: ${item.candidate_deer.name}`, "primary"),
          isMatch
            ? button("new", "n", "New deer", `Not ${item.candidate_deer.name}: split it off as a new deer`)
            : button("reject", "r", "Reject", `Not ${item.candidate_deer.name}: it stays ${item.current_deer.name}`),
          button("other", "o", "Other deer…", "It is a different deer you know"),
          h("span", { class: "nav-spacer" }),
          h("button", { type: "button", class: "btn", disabled: pos === 0, onclick: () => step(-1), title: "Previous (←)" }, "← Previous"),
          h("button", { type: "button", class: "btn", disabled: pos >= queue.length - 1, onclick: () => step(1), title: "Skip (→)" }, "Skip →"),
        ),
      ),
    );
  }

  function button(action, key, label, hint, cls = "") {
    return h(
      "button",
      { type: "button", class: `btn big ${cls}`, id: `decide-${action}`, title: hint, onclick: () => decide(action) },
      h("span", {}, label, " ", h("kbd", {}, key)),
      h("span", { class: "hint" }, hint),
    );
  }

  function step(d) {
    const next = pos + d;
    if (next < 0 || next >= queue.length) return;
    pos = next;
    show();
  }

  async function decide(action) {
    if (deciding || !queue.length) return;
    const item = queue[pos];
    const body = { detection_id: item.detection_id, candidate_deer: item.candidate_deer.id, decision: action === "confirm" ? "confirm" : "reject" };
    if (action === "other") {
      const pick = await pickDeer({
        title: "Which deer is this sighting?",
        exclude: [item.candidate_deer.id, item.current_deer.id],
        offerNew: item.kind === "match",
        confirmLabel: (p) => (p.newDeer ? "A new deer" : `It is ${p.deer.name}`),
      });
      if (!pick) return;
      if (pick.deer) body.move_to = pick.deer.id;
    }
    deciding = true;
    const btn = stage.querySelector(`#decide-${action}`);
    try {
      const out = await (btn ? busy(btn, post("/api/review", body)) : post("/api/review", body));
      decided += 1;
      done.add(item.detection_id);
      const verb = body.decision === "confirm" ? "Confirmed" : "Rejected";
      const note = notify(`${verb}: the sighting is now in `);
      note.querySelector(".notice-text").append(h("a", { href: `/deer/${out.deer.id}` }, out.deer.name), ".");
      await fetchQueue(); // the decided item is gone; what was next now sits at `pos`
    } catch (err) {
      notifyError(err, "Could not record the decision: ");
    } finally {
      deciding = false;
    }
  }

  function onKey(e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    if (document.querySelector("dialog[open]")) return;
    const t = e.target;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    const item = queue[pos];
    if (!item) return;
    const map = {
      c: "confirm",
      r: item.kind === "match" ? "new" : "reject",
      n: item.kind === "match" ? "new" : "reject",
      o: "other",
    };
    const key = e.key.toLowerCase();
    if (map[key]) {
      e.preventDefault();
      decide(map[key]);
    } else if (e.key === "ArrowRight" || e.key === "j") {
      e.preventDefault();
      step(1);
    } else if (e.key === "ArrowLeft" || e.key === "k") {
      e.preventDefault();
      step(-1);
    }
  }
  document.addEventListener("keydown", onKey);

  clear(stage, h("p", { class: "muted" }, "Loading…"));
  await fetchQueue();
  return { cleanup: () => document.removeEventListener("keydown", onKey) };
}
