// Review: one query deer beside its top candidates, decided with keys (1–9, n, s, u, ←/→).
// QC mode (/review?qc=<deer id>) walks one deer's sightings, worst-fitting first, to split wrong ones off.

import { get, post, query } from "../api.js";
import { clear, cropFigure, emptyState, errorBox, h, notify, notifyError, plural, scoreWords, sexBadge, showPhoto, when } from "../ui.js";
import { qcPage } from "./qc.js";

const K = 8;
const UNDONE_WORDS = {
  match: (name) => `Undone: ${name} is its own deer again.`,
  none: (name) => `Undone: “none of these” for ${name}.`,
  skip: (name) => `Undone: the skip of ${name}.`,
};

// The session outlives a visit to a deer's page: back on /review, the screens decided so far are still
// there to step back through and undo.
const session = {
  history: [], // {screen, decision: {id, choice, candidate, deer, undone}}, oldest first
  exclude: new Set(), // query deer skipped in this session: /next leaves them out
};

function decidedCount() {
  return session.history.filter((e) => !e.decision.undone).length;
}

function lastUndoable() {
  for (let i = session.history.length - 1; i >= 0; i--) if (!session.history[i].decision.undone) return i;
  return -1;
}

export function deerFacts(d) {
  return [
    plural(d.sighting_count, "sighting"),
    d.cameras && d.cameras.length ? d.cameras.join(", ") : "no camera",
    `last seen ${when(d.last_seen, { time: false })}`,
  ].join(" · ");
}

export async function reviewPage(view, { query: params, navigate }) {
  if (params.get("qc")) return qcPage(view, params.get("qc"), { navigate });

  let live = null; // the screen waiting for a decision; null when nothing is left
  let pos = session.history.length; // which screen is shown: history.length is the live one
  let working = false;
  let conflict = null; // why the last decision was refused (409), shown above the reloaded screen
  let photoCrop = null; // the crop `f` opens

  const counter = h("p", { class: "muted summary", id: "review-count" }, " ");
  const where = h("span", { class: "muted small", id: "review-pos" });
  const stage = h("div", { class: "review-stage", id: "review" });
  clear(
    view,
    h("div", { class: "page-head" }, h("h1", {}, "Review"), counter, h("span", { class: "nav-spacer" }), where),
    stage,
    h(
      "p",
      { class: "muted small keys" },
      "Keys: ",
      h("kbd", {}, "1"),
      "–",
      h("kbd", {}, "9"),
      " same deer as that candidate · ",
      h("kbd", {}, "n"),
      " none of these · ",
      h("kbd", {}, "s"),
      " skip (not comparable) · ",
      h("kbd", {}, "u"),
      " undo · ",
      h("kbd", {}, "←"),
      " ",
      h("kbd", {}, "→"),
      " earlier screens · ",
      h("kbd", {}, "f"),
      " whole photo",
    ),
  );

  function drawCounter() {
    const remaining = live ? live.remaining : 0;
    const decided = decidedCount();
    counter.textContent = `${plural(remaining, "query", "queries")} waiting · ${plural(decided, "decision")} this session`;
    where.textContent = session.history.length ? `screen ${pos + 1} of ${session.history.length + (live ? 1 : 0)}` : "";
  }

  async function loadNext() {
    stage.setAttribute("aria-busy", "true");
    try {
      live = await get(`/api/review/next${query({ k: K, exclude: [...session.exclude].join(",") })}`);
    } catch (err) {
      live = null;
      stage.classList.remove("working");
      clear(stage, errorBox(err, loadNext));
      drawCounter();
      return;
    } finally {
      stage.removeAttribute("aria-busy");
    }
    show();
  }

  function show() {
    stage.classList.remove("working");
    drawCounter();
    if (pos < session.history.length) {
      const entry = session.history[pos];
      drawScreen(entry.screen, entry);
    } else if (live) drawScreen(live, null);
    else {
      photoCrop = null;
      clear(
        stage,
        conflictBox(),
        emptyState(
          "Nothing left to review",
          session.history.length
            ? `Every query is decided: ${plural(decidedCount(), "decision")} in this session. Step back with ← to see or undo them.`
            : "No deer waits for a decision: every new sighting was placed or decided already.",
          navBar(),
          h("a", { href: "/", class: "btn" }, "Back to the deer"),
        ),
      );
    }
  }

  function conflictBox() {
    if (!conflict) return null;
    return h(
      "div",
      { class: "error-box conflict", id: "review-conflict", role: "alert" },
      h("strong", {}, "Not recorded: "),
      /[.!?]$/.test(conflict) ? conflict : `${conflict}.`,
      " This is the screen as it stands now; nothing was lost.",
    );
  }

  function navBar() {
    const atLive = pos >= session.history.length;
    return h(
      "span",
      { class: "review-nav" },
      h("button", { type: "button", class: "btn", id: "review-back", disabled: pos === 0, onclick: () => step(-1), title: "Previous screen (←)" }, "← Back"),
      h("button", { type: "button", class: "btn", id: "review-forward", disabled: atLive, onclick: () => step(1), title: "Next screen (→)" }, "Forward →"),
    );
  }

  function decidedBanner(entry) {
    const d = entry.decision;
    const what =
      d.choice === "match"
        ? [`the same deer as candidate ${d.candidate.rank}, `, h("a", { href: `/deer/${d.deer.id}` }, d.deer.name), "."]
        : d.choice === "none"
          ? ["none of these; it stayed ", h("a", { href: `/deer/${d.deer.id}` }, d.deer.name), "."]
          : ["skipped, not comparable."];
    return h(
      "div",
      { class: `decided-banner${d.undone ? " undone" : ""}`, id: "review-decided", role: "status" },
      h("span", { class: "decided-text" }, h("strong", {}, d.undone ? "Undone. " : "Decided: "), d.undone ? "It was: " : null, what),
      d.undone
        ? null
        : h("button", { type: "button", class: "btn", id: "review-undo-this", onclick: () => undo(pos) }, "Undo this decision ", h("kbd", {}, "u")),
    );
  }

  function drawScreen(screen, entry) {
    const readOnly = entry !== null;
    const chosen = readOnly && entry.decision.choice === "match" ? entry.decision.candidate.deer.id : null;
    const q = screen.query;
    photoCrop = q.crops[0] || null;

    const actions = readOnly
      ? h("div", { class: "decide" }, decidedBanner(entry), navBar())
      : h(
          "div",
          { class: "decide" },
          h(
            "button",
            { type: "button", class: "btn", id: "decide-none", onclick: () => decide("none"), title: "None of these is the same deer: it stays its own" },
            "None of these ",
            h("kbd", {}, "n"),
          ),
          h(
            "button",
            { type: "button", class: "btn", id: "decide-skip", onclick: () => decide("skip"), title: "Cannot tell from these pictures (e.g. only legs)" },
            "Skip, not comparable ",
            h("kbd", {}, "s"),
          ),
          h(
            "button",
            {
              type: "button",
              class: "btn",
              id: "review-undo",
              disabled: lastUndoable() < 0,
              onclick: () => undo(lastUndoable()),
              title: "Undo the last decision",
            },
            "Undo last ",
            h("kbd", {}, "u"),
          ),
          h("span", { class: "nav-spacer" }),
          navBar(),
        );

    const queryPane = h(
      "section",
      { class: "panel query-pane", id: "review-query", dataset: { deer: q.deer.id } },
      h("div", { class: "pane-head" }, h("h2", {}, "Who is ", h("a", { href: `/deer/${q.deer.id}` }, q.deer.name), "?"), sexBadge(q.deer.sex)),
      h("p", { class: "muted small pane-facts" }, deerFacts(q.deer)),
      h(
        "div",
        { class: `query-crops n${Math.min(q.crops.length, 3)}` },
        q.crops.length
          ? q.crops.map((c, i) => cropFigure(c, { cls: "query-crop", alt: `${q.deer.name}, crop ${i + 1}`, onFocus: (x) => (photoCrop = x) }))
          : h("p", { class: "muted" }, "No picture of this deer."),
      ),
    );

    const cards = screen.candidates.map((c) => candidateCard(screen, c, { readOnly, chosen: c.deer.id === chosen }));
    const candidatesPane = h(
      "section",
      { class: "candidates-pane" },
      h(
        "h2",
        {},
        screen.candidates.length ? `Is it one of these ${plural(screen.candidates.length, "deer", "deer")}?` : "No candidate to compare with",
        screen.calibrated
          ? null
          : h(
              "span",
              { class: "muted small uncalibrated", title: "This model has no calibration: the numbers are raw cosine similarities, not probabilities." },
              " (raw similarity: no calibration yet)",
            ),
      ),
      screen.candidates.length
        ? h("ol", { class: "candidates", id: "review-candidates" }, cards)
        : h("p", { class: "muted" }, "There is no other deer of this kind to compare with. Press ", h("kbd", {}, "n"), " to keep it as its own deer."),
    );

    clear(
      stage,
      readOnly ? null : conflictBox(),
      h(
        "div",
        {
          class: `review-screen${readOnly ? " read-only" : ""}`,
          id: "review-screen",
          dataset: { query: q.deer.id, state: readOnly ? (entry.decision.undone ? "undone" : "decided") : "live" },
        },
        actions,
        h("div", { class: "review-layout" }, queryPane, candidatesPane),
      ),
    );
  }

  function candidateCard(screen, c, { readOnly, chosen }) {
    const score = scoreWords(c.probability, screen.calibrated);
    const bar = h("span", { class: "score-fill" });
    bar.style.width = `${Math.max(0, Math.min(1, Number(c.probability) || 0)) * 100}%`;
    const key = c.rank <= 9 ? String(c.rank) : null;
    return h(
      "li",
      { class: `candidate${chosen ? " chosen" : ""}`, id: `candidate-${c.rank}`, dataset: { rank: c.rank, deer: c.deer.id } },
      h(
        "div",
        { class: "cand-head" },
        h("span", { class: "rank", "aria-label": `candidate ${c.rank}` }, String(c.rank)),
        h("span", { class: "cand-name" }, h("a", { href: `/deer/${c.deer.id}` }, c.deer.name), sexBadge(c.deer.sex)),
        h(
          "span",
          {
            class: "score",
            title: screen.calibrated ? "Calibrated probability that it is the same animal" : "Raw cosine similarity: this model has no calibration yet",
          },
          h("span", { class: "score-label" }, score.label),
          h("strong", { class: "score-value" }, score.text),
          h("span", { class: "score-bar" }, bar),
        ),
      ),
      h(
        "div",
        { class: "cand-crops" },
        c.crops.length
          ? c.crops.map((x, i) => cropFigure(x, { cls: "cand-crop", alt: `${c.deer.name}, crop ${i + 1}`, short: true }))
          : h("p", { class: "muted small" }, "no picture"),
      ),
      h(
        "div",
        { class: "cand-foot" },
        h("span", { class: "muted small cand-facts", title: deerFacts(c.deer) }, deerFacts(c.deer)),
        readOnly
          ? chosen
            ? h("span", { class: "badge ok chosen-badge" }, "✓ chosen")
            : null
          : h(
              "button",
              {
                type: "button",
                class: "btn small primary pick",
                id: `pick-${c.rank}`,
                onclick: () => decide("match", c.rank),
                title: `The same deer as ${c.deer.name}: merge them`,
              },
              "Same deer",
              key ? h("kbd", {}, key) : null,
            ),
      ),
    );
  }

  function step(d) {
    const next = Math.max(0, Math.min(session.history.length, pos + d));
    if (next === pos) return;
    pos = next;
    conflict = null;
    show();
    window.scrollTo({ top: 0 });
  }

  // While a decision is on its way nothing else can be pressed; the next drawing enables them again.
  function markBusy() {
    stage.classList.add("working");
    for (const b of stage.querySelectorAll(".decide .btn, .candidate .pick, #review-undo-this")) b.disabled = true;
  }

  async function decide(choice, rank = null) {
    if (working || !live || pos !== session.history.length) return;
    const screen = live;
    const candidate = rank === null ? null : screen.candidates.find((c) => c.rank === rank);
    if (choice === "match" && !candidate) return;
    working = true;
    markBusy();
    try {
      const out = await post("/api/review/decisions", {
        query: screen.query.deer.id,
        shown: screen.candidates.map((c) => c.deer.id),
        choice,
        candidate: candidate ? candidate.deer.id : null,
      });
      session.history.push({ screen, decision: { id: out.decision_id, choice, candidate, deer: out.deer, undone: false } });
      if (choice === "skip") session.exclude.add(screen.query.deer.id);
      conflict = null;
      pos = session.history.length;
      if (choice === "match") notify(`Merged: ${screen.query.deer.name} is now ${out.deer.name} (${plural(out.deer.sighting_count, "sighting")}).`);
      window.scrollTo({ top: 0 });
      await loadNext();
    } catch (err) {
      if (err.status === 409) {
        // the query or a candidate changed since the screen was loaded: show why, and the screen as it is now
        conflict = err.detail || err.message;
        await loadNext();
      } else {
        notifyError(err, "Could not record the decision: ");
        stage.classList.remove("working");
        show();
      }
    } finally {
      working = false;
    }
  }

  async function undo(index) {
    if (working || index < 0 || index >= session.history.length) return;
    const entry = session.history[index];
    if (entry.decision.undone) return;
    working = true;
    markBusy();
    try {
      await post(`/api/review/decisions/${entry.decision.id}/undo`);
      entry.decision.undone = true;
      session.exclude.delete(entry.screen.query.deer.id);
      conflict = null;
      notify(UNDONE_WORDS[entry.decision.choice](entry.screen.query.deer.name));
      await loadNext(); // the query waits again, and the live screen may have changed with it
    } catch (err) {
      // a later change stands in the way: the server says which
      if (err.status === 409) notify(`Cannot undo: ${err.detail || err.message}`, { kind: "error" });
      else notifyError(err, "Could not undo: ");
      stage.classList.remove("working");
      show();
    } finally {
      working = false;
    }
  }

  function onKey(e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    if (document.querySelector("dialog[open]")) return;
    const t = e.target;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    const key = e.key;
    const atLive = pos >= session.history.length;
    let handled = true;
    if (/^[1-9]$/.test(key)) atLive && decide("match", Number(key));
    else if (key === "n" || key === "N") atLive && decide("none");
    else if (key === "s" || key === "S") atLive && decide("skip");
    else if (key === "u" || key === "U") {
      if (atLive) {
        const i = lastUndoable();
        if (i < 0) notify("Nothing to undo in this session.");
        else undo(i);
      } else undo(pos);
    } else if (key === "ArrowLeft") step(-1);
    else if (key === "ArrowRight") step(1);
    else if (key === "f" || key === "F") {
      if (photoCrop) showPhoto(photoCrop);
    } else handled = false;
    if (handled) e.preventDefault();
  }
  document.addEventListener("keydown", onKey);

  clear(stage, h("p", { class: "muted" }, "Loading…"));
  await loadNext();
  return { cleanup: () => document.removeEventListener("keydown", onKey) };
}
