// One deer: its picture, facts, activity charts, cameras and every sighting; rename, merge, move.

import { del, get, patch, post, query } from "../api.js";
import { categoryChart, hourChart, timelineChart, weekChart } from "../charts.js";

const DAYLIGHT = ["night", "dawn", "day", "dusk", "unknown"];
const MOON = ["new moon", "waxing crescent", "first quarter", "waxing gibbous", "full moon", "waning gibbous", "last quarter", "waning crescent"];
// Eight names do not fit under the bars; the full name is in each bar's tooltip.
const MOON_SHORT = {
  "new moon": "new",
  "waxing crescent": "wax. cresc.",
  "first quarter": "1st qtr",
  "waxing gibbous": "wax. gibb.",
  "full moon": "full",
  "waning gibbous": "wan. gibb.",
  "last quarter": "last qtr",
  "waning crescent": "wan. cresc.",
};
import {
  ASSIGNMENT_LABEL,
  busy,
  clear,
  crop,
  debounce,
  emptyState,
  errorBox,
  h,
  modal,
  notify,
  notifyError,
  plural,
  SEX_LABEL,
  sexBadge,
  similarity,
  similarityWords,
  when,
} from "../ui.js";

// A list of deer to choose from, searchable by name. Resolves {deer} / {newDeer: true} / null.
export function pickDeer({ title, exclude = [], offerNew = false, confirmLabel }) {
  return modal(
    title,
    (body, done) => {
      const search = h("input", { type: "search", id: "pick-q", placeholder: "Search by name…", "aria-label": "Search by name" });
      const list = h("div", { class: "pick-list", id: "pick-list", role: "listbox", "aria-label": "Deer" });
      const footer = h("div", { class: "modal-foot" });
      let chosen = null;
      let controller = null;

      function choose(item, button) {
        chosen = item;
        for (const b of list.querySelectorAll(".pick-item")) b.setAttribute("aria-selected", String(b === button));
        clear(
          footer,
          h("span", { class: "muted" }, item.newDeer ? "A new deer profile" : `${item.deer.name} · ${plural(item.deer.sighting_count, "sighting")}`),
          h("button", { type: "button", class: "btn", onclick: () => done(null) }, "Cancel"),
          h("button", { type: "button", class: "btn primary", id: "pick-confirm", onclick: () => done(chosen) }, confirmLabel(item)),
        );
      }

      async function load() {
        if (controller) controller.abort();
        controller = new AbortController();
        let page;
        try {
          page = await get(`/api/deer${query({ q: search.value.trim(), limit: 60, sort: "name", order: "asc" })}`, {
            signal: controller.signal,
          });
        } catch (err) {
          if (err.name !== "AbortError") clear(list, errorBox(err, load));
          return;
        }
        const items = page.items.filter((d) => !exclude.includes(d.id));
        const buttons = items.map((d) => {
          const b = h(
            "button",
            { type: "button", class: "pick-item", role: "option", "aria-selected": "false", dataset: { id: d.id } },
            crop(d.crop_url, "", { lazy: true, cls: "crop thumb" }),
            h("span", { class: "pick-name" }, d.name),
            h(
              "span",
              { class: "muted small" },
              `${SEX_LABEL[d.sex] || d.sex} · ${plural(d.sighting_count, "sighting")} · ${when(d.last_seen, { time: false })}`,
            ),
          );
          b.addEventListener("click", () => choose({ deer: d }, b));
          b.addEventListener("dblclick", () => done({ deer: d }));
          return b;
        });
        if (offerNew) {
          const b = h(
            "button",
            { type: "button", class: "pick-item pick-new", role: "option", "aria-selected": "false" },
            h("span", { class: "crop thumb crop-missing" }, "+"),
            h("span", { class: "pick-name" }, "A new deer"),
            h("span", { class: "muted small" }, "split off into its own profile"),
          );
          b.addEventListener("click", () => choose({ newDeer: true }, b));
          buttons.unshift(b);
        }
        clear(list, buttons.length ? buttons : h("p", { class: "muted" }, search.value ? "No other deer has that name." : "There is no other deer."));
        if (page.total > page.items.length)
          list.append(h("p", { class: "muted small" }, `Showing ${page.items.length} of ${page.total}: type part of a name to narrow.`));
      }

      search.addEventListener("input", debounce(load, 250));
      body.append(search, list, footer);
      load();
      setTimeout(() => search.focus(), 0);
    },
    { wide: true },
  );
}

function stat(label, value) {
  return h("div", { class: "stat" }, h("dt", {}, label), h("dd", {}, value));
}

export async function deerPage(view, { params, navigate }) {
  const id = params[0];
  let selected = new Set();
  let undoBar = null;

  async function load() {
    const [deer, line, places, visits, years] = await Promise.all([
      get(`/api/deer/${id}`),
      get(`/api/deer/${id}/timeline`),
      get(`/api/deer/${id}/locations`),
      get(`/api/deer/${id}/activity`),
      get(`/api/deer/${id}/years`),
    ]);
    return { deer, line, places, visits, years };
  }

  // One read is enough after a change: the server commits before it answers (SessionDep).
  async function refresh() {
    let data;
    try {
      data = await load();
    } catch (err) {
      if (err.status === 404) {
        clear(
          view,
          emptyState(
            "This deer is gone",
            "It was merged into another deer or all its sightings were moved.",
            h("a", { href: "/", class: "btn" }, "Back to all deer"),
          ),
        );
        return;
      }
      clear(
        view,
        errorBox(err, () => refresh()),
      );
      return;
    }
    selected = new Set([...selected].filter((d) => data.line.sightings.some((s) => s.detection_id === d)));
    draw(data);
  }

  function draw({ deer, line, places, visits, years }) {
    document.title = `${deer.name} · deerid`;
    const editBox = h("div", { class: "edit-box", hidden: true });
    const head = h(
      "section",
      { class: "deer-head" },
      crop(deer.crop_url, `Best picture of ${deer.name}`, { cls: "crop hero" }),
      h(
        "div",
        { class: "deer-facts" },
        h("p", { class: "crumbs" }, h("a", { href: "/" }, "All deer"), " ›"),
        h(
          "h1",
          { id: "deer-name" },
          deer.starred ? h("span", { class: "star on", title: "Starred: on the hit list" }, "★ ") : null,
          deer.name,
          " ",
          sexBadge(deer.sex),
        ),
        h(
          "dl",
          { class: "stats" },
          stat("Sightings", h("span", { id: "deer-sightings" }, String(deer.sighting_count))),
          stat("First seen", when(deer.first_seen)),
          stat("Last seen", when(deer.last_seen)),
          stat("Cameras", deer.cameras.length ? deer.cameras.join(", ") : "—"),
          deer.confidence !== null ? stat("Confidence", similarity(deer.confidence)) : null,
        ),
        deer.notes ? h("p", { class: "notes", id: "deer-notes" }, deer.notes) : h("p", { class: "muted small" }, "No notes."),
        h(
          "div",
          { class: "actions" },
          h(
            "button",
            {
              type: "button",
              class: deer.starred ? "btn starred" : "btn",
              id: "star-deer",
              "aria-pressed": String(deer.starred),
              onclick: (e) => star(deer, e.currentTarget),
            },
            deer.starred ? "★ Starred" : "☆ Star",
          ),
          h("button", { type: "button", class: "btn", id: "edit-deer", onclick: () => openEdit() }, "Edit name, sex, notes"),
          h("button", { type: "button", class: "btn", id: "merge-deer", onclick: (e) => merge(deer, e.currentTarget) }, "Merge another deer into this one…"),
          deer.sighting_count > 1
            ? h(
                "a",
                {
                  class: "btn",
                  id: "qc-deer",
                  href: `/review?qc=${deer.id}`,
                  title: "Walk its sightings, worst-fitting first, and split off the ones that are another deer",
                },
                "Check sightings (QC)",
              )
            : null,
        ),
        editBox,
      ),
    );

    function openEdit() {
      const name = h("input", { id: "edit-name", value: deer.name, required: true, maxlength: 200 });
      const sex = h(
        "select",
        { id: "edit-sex" },
        Object.entries(SEX_LABEL).map(([v, l]) => h("option", { value: v }, l)),
      );
      sex.value = deer.sex;
      const notes = h("textarea", { id: "edit-notes", rows: 3, maxlength: 10000 });
      notes.value = deer.notes || "";
      const save = h("button", { type: "submit", class: "btn primary", id: "edit-save" }, "Save");
      const form = h(
        "form",
        { class: "form-grid" },
        h("label", { for: "edit-name" }, "Name"),
        name,
        h("label", { for: "edit-sex" }, "Sex"),
        sex,
        h("label", { for: "edit-notes" }, "Notes"),
        notes,
        h("div", { class: "form-actions" }, save, h("button", { type: "button", class: "btn", onclick: () => (editBox.hidden = true) }, "Cancel")),
      );
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const changes = {};
        if (name.value.trim() !== deer.name) changes.name = name.value.trim();
        if (sex.value !== deer.sex) changes.sex = sex.value;
        if (notes.value !== (deer.notes || "")) changes.notes = notes.value;
        if (!Object.keys(changes).length) {
          editBox.hidden = true;
          return;
        }
        try {
          const saved = await busy(save, patch(`/api/deer/${deer.id}`, changes));
          notify(`Saved ${saved.name}.`);
          await refresh();
        } catch (err) {
          notifyError(err, "Could not save: ");
        }
      });
      clear(editBox, form);
      editBox.hidden = false;
      name.focus();
      name.select();
    }

    const charts = h(
      "section",
      { class: "charts" },
      h(
        "div",
        { class: "panel" },
        h("h2", {}, "Timeline"),
        line.by_day.length ? timelineChart(line.by_day) : h("p", { class: "muted" }, "No dated sightings."),
      ),
      h(
        "div",
        { class: "panel" },
        h("h2", {}, "Visits by hour"),
        visits.by_hour.some(Boolean) ? hourChart(visits.by_hour, { noun: "visit" }) : h("p", { class: "muted" }, "No dated visits."),
      ),
      h(
        "div",
        { class: "panel" },
        h("h2", {}, "Visits by daylight"),
        visits.visits - visits.undated
          ? categoryChart(visits.by_daylight, DAYLIGHT, { title: "Visits by daylight phase", cls: "daylight-chart" })
          : h("p", { class: "muted" }, "No dated visits."),
        visits.by_daylight.unknown ? h("p", { class: "muted small" }, "Unknown: the camera has no coordinates (set them on the Cameras page).") : null,
      ),
      h(
        "div",
        { class: "panel" },
        h("h2", {}, "Visits by moon phase"),
        visits.visits - visits.undated
          ? categoryChart(visits.by_moon, MOON, { title: "Visits by moon phase", cls: "moon-chart", short: MOON_SHORT })
          : h("p", { class: "muted" }, "No dated visits."),
      ),
      h("div", { class: "panel" }, h("h2", {}, "Visits by week of the season"), weekChart(visits.by_week) || h("p", { class: "muted" }, "No dated visits.")),
      h(
        "p",
        { class: "muted small charts-note" },
        `A visit is one encounter (photos of one camera moments apart), however many photos it holds: ${plural(visits.visits, "visit")}. Times on the camera's clock, ${visits.timezone}; seasons start ${visits.season_start}.`,
      ),
    );

    const placeTable = places.length
      ? h(
          "table",
          { class: "table", id: "places" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", {}, "Camera"),
              h("th", { class: "num" }, "Sightings"),
              h("th", {}, "First seen"),
              h("th", {}, "Last seen"),
              h("th", {}, "Position"),
            ),
          ),
          h(
            "tbody",
            {},
            places.map((p) =>
              h(
                "tr",
                {},
                h("td", {}, p.camera || "unknown camera"),
                h("td", { class: "num" }, String(p.sightings)),
                h("td", {}, when(p.first_seen)),
                h("td", {}, when(p.last_seen)),
                h(
                  "td",
                  {},
                  p.latitude !== null && p.longitude !== null
                    ? `${p.latitude.toFixed(5)}, ${p.longitude.toFixed(5)}`
                    : h("a", { href: "/cameras", class: "muted" }, "not set"),
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No camera recorded.");

    const toolbar = h("div", { class: "toolbar", id: "sighting-tools" });
    const grid = h(
      "div",
      { class: "grid sighting-grid", id: "sightings" },
      line.sightings.map((s) => sightingCard(s)),
    );

    function sightingCard(s) {
      const box = h("input", { type: "checkbox", class: "pick", "aria-label": `Select sighting ${s.detection_id}`, checked: selected.has(s.detection_id) });
      box.addEventListener("change", () => {
        if (box.checked) selected.add(s.detection_id);
        else selected.delete(s.detection_id);
        card.classList.toggle("selected", box.checked);
        drawTools();
      });
      const card = h(
        "figure",
        { class: `card sighting${selected.has(s.detection_id) ? " selected" : ""}`, dataset: { detection: s.detection_id } },
        h(
          "a",
          { href: s.image_url, target: "_blank", rel: "noopener", title: "Open the whole photo" },
          crop(s.crop_url, `Sighting ${s.detection_id}`, { lazy: true }),
        ),
        h("label", { class: "pick-box" }, box),
        h(
          "figcaption",
          { class: "card-body" },
          h("div", { class: "card-title" }, when(s.captured_at)),
          h("div", { class: "card-meta" }, s.camera || "unknown camera"),
          s.event_id != null || s.track_id != null
            ? h(
                "div",
                { class: "card-meta muted track-meta" },
                [s.event_id != null ? `event ${s.event_id}` : null, s.track_id != null ? `track ${s.track_id}` : null].filter(Boolean).join(" · "),
              )
            : null,
          h(
            "div",
            { class: "card-meta muted" },
            ASSIGNMENT_LABEL[s.assignment] || s.assignment || "—",
            s.similarity !== null ? h("br") : null,
            similarityWords(s),
            s.confirmed ? h("span", { class: "badge ok", title: "Confirmed by a person" }, "✓ confirmed") : null,
          ),
        ),
      );
      return card;
    }

    function drawTools() {
      const n = selected.size;
      clear(
        toolbar,
        n
          ? [
              h("span", {}, `${plural(n, "sighting")} selected`),
              h("button", { type: "button", class: "btn", id: "move-other", onclick: (e) => move(deer, false, e.currentTarget) }, "Move to another deer…"),
              h("button", { type: "button", class: "btn", id: "move-new", onclick: (e) => move(deer, true, e.currentTarget) }, "Move to a new deer"),
              h(
                "button",
                { type: "button", class: "btn link", onclick: () => (selected.clear(), draw({ deer, line, places, visits, years })) },
                "Clear selection",
              ),
            ]
          : h(
              "span",
              { class: "muted small" },
              "Tick sightings to move them to another deer or split them off as a new one. Click a picture for the whole photo.",
            ),
      );
    }
    drawTools();

    clear(
      view,
      undoBar,
      head,
      charts,
      yearsPanel(deer, years),
      h("section", { class: "panel" }, h("h2", {}, "Cameras where seen"), placeTable),
      h(
        "section",
        {},
        h("h2", {}, `Sightings (${line.sightings.length})`),
        toolbar,
        line.sightings.length ? grid : h("p", { class: "muted" }, "No sightings."),
      ),
    );
  }

  async function star(deer, button) {
    try {
      await busy(button, patch(`/api/deer/${deer.id}`, { starred: !deer.starred }));
    } catch (err) {
      notifyError(err, "Could not change the star: ");
      return;
    }
    notify(deer.starred ? `${deer.name} is off the hit list` : `${deer.name} is on the hit list ★`);
    await refresh();
  }

  // One animal's profiles of several seasons (antlers change every year, so the matcher keeps
  // them apart): side by side, oldest first; links are made and undone here.
  function yearsPanel(deer, years) {
    const others = years.filter((y) => y.deer.id !== deer.id);
    const cards = years.map((y) =>
      h(
        "div",
        { class: y.deer.id === deer.id ? "year-card current" : "year-card", dataset: { id: y.deer.id } },
        h("div", { class: "year-season" }, y.season),
        crop(y.deer.crop_url, `Best picture of ${y.deer.name}`, { cls: "crop year-crop" }),
        y.deer.id === deer.id ? h("b", {}, `${y.deer.name} (this profile)`) : h("a", { href: `/deer/${y.deer.id}` }, y.deer.name),
        h(
          "div",
          { class: "muted small" },
          `${plural(y.deer.sighting_count, "sighting")} · ${when(y.deer.first_seen, { time: false })} – ${when(y.deer.last_seen, { time: false })}`,
        ),
        y.linked_directly
          ? h("button", { type: "button", class: "btn link unlink-year", onclick: (e) => unlinkYear(deer, y.deer, e.currentTarget) }, "Unlink")
          : y.deer.id === deer.id
            ? null
            : h("div", { class: "muted small" }, "linked through another year"),
      ),
    );
    return h(
      "section",
      { class: "panel", id: "years" },
      h(
        "div",
        { class: "row" },
        h("h2", {}, others.length ? "The same deer in other years" : "Other years"),
        h("button", { type: "button", class: "btn", id: "link-year", onclick: (e) => linkYear(deer, e.currentTarget) }, "Link another year…"),
      ),
      others.length
        ? h("div", { class: "years" }, cards)
        : h(
            "p",
            { class: "muted small" },
            "A buck's antlers change every year, so last season's profile of him is often a deer of its own. Link it here: both stay, side by side.",
          ),
    );
  }

  async function linkYear(deer, button) {
    const pick = await pickDeer({
      title: `${deer.name} in another year`,
      exclude: [deer.id],
      confirmLabel: (item) => `Link ${item.deer.name} as ${deer.name} in another year`,
    });
    if (!pick) return;
    try {
      await busy(button, post(`/api/deer/${deer.id}/links`, { deer_id: pick.deer.id }));
    } catch (err) {
      notifyError(err, "Could not link: ");
      return;
    }
    notify(`Linked ${pick.deer.name} and ${deer.name} as one deer in different years`);
    await refresh();
  }

  async function unlinkYear(deer, other, button) {
    try {
      await busy(button, del(`/api/deer/${deer.id}/links/${other.id}`));
    } catch (err) {
      notifyError(err, "Could not unlink: ");
      return;
    }
    notify(`${other.name} is no longer linked to ${deer.name}`);
    await refresh();
  }

  async function merge(deer, button) {
    const pick = await pickDeer({
      title: `Merge another deer into ${deer.name}`,
      exclude: [deer.id],
      confirmLabel: (item) => `Merge ${item.deer.name} into ${deer.name}`,
    });
    if (!pick) return;
    const other = pick.deer;
    let out;
    try {
      out = await busy(button, post(`/api/deer/${deer.id}/merge`, { deer_ids: [other.id] }));
    } catch (err) {
      notifyError(err, "Could not merge: ");
      return;
    }
    const undo = h("button", { type: "button", class: "btn small", id: "undo-merge" }, "Undo");
    undoBar = h(
      "div",
      { class: "undo-bar", role: "status" },
      h("span", {}, `Merged ${other.name} into ${out.deer.name}: ${plural(out.deer.sighting_count, "sighting")} now. `),
      undo,
      h("button", { type: "button", class: "notice-close", "aria-label": "Close", onclick: () => (undoBar.remove(), (undoBar = null)) }, "×"),
    );
    undo.addEventListener("click", async () => {
      try {
        const restored = await busy(undo, post(`/api/merges/${out.merge_id}/undo`));
        undoBar = null;
        const names = restored.map((d) => d.name).join(", ");
        const note = notify(`Undone: ${names} ${restored.length === 1 ? "is" : "are"} back. `);
        for (const d of restored) note.querySelector(".notice-text").append(h("a", { href: `/deer/${d.id}` }, d.name), " ");
        const back = restored.reduce((n, d) => n + d.sighting_count, 0);
        await refresh();
      } catch (err) {
        notifyError(err, "Could not undo the merge: ");
      }
    });
    await refresh();
  }

  async function move(deer, toNew, button) {
    const ids = [...selected];
    let target = null;
    if (!toNew) {
      const pick = await pickDeer({
        title: `Move ${plural(ids.length, "sighting")} of ${deer.name} to…`,
        exclude: [deer.id],
        offerNew: true,
        confirmLabel: (item) => (item.newDeer ? "Move to a new deer" : `Move to ${item.deer.name}`),
      });
      if (!pick) return;
      target = pick.newDeer ? null : pick.deer.id;
    }
    let out;
    try {
      out = await busy(button, post(`/api/deer/${deer.id}/split`, { detection_ids: ids, to_deer: target }));
    } catch (err) {
      notifyError(err, "Could not move: ");
      return;
    }
    selected.clear();
    const note = notify(`Moved ${plural(ids.length, "sighting")} to `);
    note.querySelector(".notice-text").append(h("a", { href: `/deer/${out.deer.id}` }, out.deer.name), target ? "." : " (new deer).");
    if (ids.length >= deer.sighting_count) navigate(`/deer/${out.deer.id}`, { replace: true });
    else await refresh();
  }

  clear(view, h("p", { class: "muted" }, "Loading…"));
  await refresh();
}
