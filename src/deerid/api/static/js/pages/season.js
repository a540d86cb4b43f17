// The season at a glance: who came this season, who is new this week, when each was last seen,
// and where the cameras are (a map from their coordinates, no tiles).

import { get, query } from "../api.js";
import { cameraMap } from "../charts.js";
import { clear, crop, emptyState, h, plural, SEX_LABEL, sexBadge, when } from "../ui.js";

function shiftYear(iso, years) {
  const [y, m, d] = iso.split("-").map(Number);
  return `${y + years}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`;
}

function dayBefore(iso) {
  const t = new Date(`${iso}T00:00:00Z`);
  t.setUTCDate(t.getUTCDate() - 1);
  return t.toISOString().slice(0, 10);
}

export async function seasonPage(view, { query: params, navigate }) {
  const at = params.get("at");
  const sexFilter = params.get("sex") || "";
  const season = await get(`/api/season${query({ at })}`);
  const go = (next) => navigate(`/season${query(next)}`);

  const title = `Season ${season.start} – ${dayBefore(season.end)}`;
  const head = h(
    "div",
    { class: "page-head" },
    h("h1", {}, title),
    h(
      "div",
      { class: "row" },
      h(
        "button",
        { type: "button", class: "btn", id: "season-prev", onclick: () => go({ at: shiftYear(season.start, -1), sex: sexFilter || null }) },
        "← Earlier season",
      ),
      h(
        "button",
        { type: "button", class: "btn", id: "season-next", onclick: () => go({ at: shiftYear(season.start, 1), sex: sexFilter || null }) },
        "Later season →",
      ),
    ),
  );
  const nowLine = season.now ? h("p", { class: "muted small" }, `“This week” is the 7 days up to the newest photo, ${when(season.now)}.`) : null;
  if (!season.deer.length) {
    clear(
      view,
      head,
      nowLine,
      emptyState("No deer this season", "Ingest photos, or look at another season."),
      h("section", { class: "panel" }, h("h2", {}, "Cameras"), cameraMap(season.cameras.map(flat))),
    );
    return;
  }
  const stats = h(
    "div",
    { class: "season-stats", id: "season-stats" },
    stat(season.bucks, "bucks seen"),
    stat(season.does, "does seen"),
    stat(season.other, "fawns and unknown"),
    stat(season.new_this_week, "new this week"),
  );
  const sex = h(
    "select",
    { id: "season-sex", "aria-label": "Sex", onchange: () => go({ at, sex: sex.value || null }) },
    h("option", { value: "" }, "Every deer"),
    Object.entries(SEX_LABEL).map(([v, label]) => h("option", { value: v }, `${label}s`)),
  );
  sex.value = sexFilter;
  const shown = season.deer.filter((d) => !sexFilter || d.deer.sex === sexFilter);
  const table = h(
    "table",
    { class: "table", id: "season-deer" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, ""),
        h("th", {}, "Deer"),
        h("th", { class: "num" }, "Visits"),
        h("th", {}, "First seen this season"),
        h("th", {}, "Last seen"),
        h("th", {}, ""),
      ),
    ),
    h(
      "tbody",
      {},
      shown.map((d) =>
        h(
          "tr",
          { dataset: { id: d.deer.id } },
          h("td", {}, crop(d.deer.crop_url, `Best picture of ${d.deer.name}`, { cls: "crop thumb" })),
          h("td", {}, h("a", { href: `/deer/${d.deer.id}` }, d.deer.name), " ", sexBadge(d.deer.sex)),
          h("td", { class: "num" }, String(d.visits)),
          h("td", {}, when(d.first_seen)),
          h("td", {}, when(d.last_seen)),
          h(
            "td",
            {},
            d.new_this_week ? h("span", { class: "badge new" }, "new this week") : null,
            d.seen_before ? h("span", { class: "badge" }, "seen in an earlier season") : null,
          ),
        ),
      ),
    ),
  );
  clear(
    view,
    head,
    nowLine,
    stats,
    h("section", { class: "panel" }, h("div", { class: "row" }, h("h2", {}, plural(shown.length, "deer", "deer")), sex), table),
    h("section", { class: "panel" }, h("h2", {}, "Cameras"), cameraMap(season.cameras.map(flat), { onSelect: (c) => navigate(`/?camera=${c.id}`) })),
  );
}

function flat(entry) {
  return { ...entry.camera, visits: entry.visits };
}

function stat(n, label) {
  return h("div", { class: "stat" }, h("b", {}, String(n)), label);
}
