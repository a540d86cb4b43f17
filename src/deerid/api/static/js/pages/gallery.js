// Gallery: one card per deer, with filters, sort and pages.

import { get, query } from "../api.js";
import { clear, crop, debounce, emptyState, errorBox, h, plural, SEX_LABEL, sexBadge, when } from "../ui.js";

const PAGE_SIZE = 24;
const SORTS = {
  last_seen: "Last seen",
  first_seen: "First seen",
  sightings: "Sightings",
  name: "Name",
  created: "Profile created",
};

export function deerCard(deer) {
  return h(
    "a",
    { class: "card deer-card", href: `/deer/${deer.id}`, dataset: { id: deer.id } },
    crop(deer.crop_url, `Best picture of ${deer.name}`),
    h(
      "div",
      { class: "card-body" },
      h(
        "div",
        { class: "card-title" },
        deer.starred ? h("span", { class: "star on", title: "Starred" }, "★") : null,
        h("span", { class: "name" }, deer.name),
        sexBadge(deer.sex),
      ),
      h("div", { class: "card-meta" }, plural(deer.sighting_count, "sighting"), " · last seen ", when(deer.last_seen, { time: false })),
      deer.cameras.length ? h("div", { class: "card-meta muted" }, deer.cameras.join(", ")) : null,
    ),
  );
}

export async function galleryPage(view) {
  const params = new URLSearchParams(location.search);
  const state = {
    q: params.get("q") || "",
    sex: params.get("sex") || "",
    camera_id: params.get("camera") || "",
    starred: params.get("starred") === "1",
    sort: SORTS[params.get("sort")] ? params.get("sort") : "last_seen",
    order: params.get("order") === "asc" ? "asc" : "desc",
    page: Math.max(1, Number.parseInt(params.get("page") || "1", 10) || 1),
  };

  const summary = h("p", { class: "muted summary" }, " ");
  const search = h("input", { type: "search", id: "f-q", placeholder: "Name…", value: state.q, "aria-label": "Search by name" });
  const sex = h(
    "select",
    { id: "f-sex", "aria-label": "Sex" },
    h("option", { value: "" }, "Any sex"),
    Object.entries(SEX_LABEL).map(([v, label]) => h("option", { value: v }, label)),
  );
  sex.value = state.sex;
  const camera = h("select", { id: "f-camera", "aria-label": "Camera" }, h("option", { value: "" }, "Any camera"));
  const starred = h("input", { type: "checkbox", id: "f-starred" });
  starred.checked = state.starred;
  const sort = h(
    "select",
    { id: "f-sort", "aria-label": "Sort by" },
    Object.entries(SORTS).map(([v, label]) => h("option", { value: v }, label)),
  );
  sort.value = state.sort;
  const order = h("button", { type: "button", class: "btn", id: "f-order" });
  const filters = h(
    "div",
    { class: "filters" },
    search,
    sex,
    camera,
    h("label", { class: "inline check", for: "f-starred" }, starred, " ★ Starred only"),
    h("label", { class: "inline", for: "f-sort" }, "Sort"),
    sort,
    order,
  );
  const grid = h("div", { class: "grid deer-grid", id: "deer-grid" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });

  clear(view, h("div", { class: "page-head" }, h("h1", {}, "Deer"), summary), filters, grid, pager);

  get("/api/cameras")
    .then((cams) => {
      for (const c of cams) camera.append(h("option", { value: String(c.id) }, c.name));
      camera.value = state.camera_id;
      if (!cams.length) camera.disabled = true;
    })
    .catch(() => {
      camera.disabled = true; // the list still works without the camera filter
    });

  let controller = null;
  const filtered = () => Boolean(state.q || state.sex || state.camera_id || state.starred);

  async function load() {
    order.textContent = state.order === "desc" ? "↓ Descending" : "↑ Ascending";
    order.setAttribute("aria-label", `Order: ${state.order === "desc" ? "descending" : "ascending"}`);
    const url = new URLSearchParams();
    if (state.q) url.set("q", state.q);
    if (state.sex) url.set("sex", state.sex);
    if (state.camera_id) url.set("camera", state.camera_id);
    if (state.starred) url.set("starred", "1");
    if (state.sort !== "last_seen") url.set("sort", state.sort);
    if (state.order !== "desc") url.set("order", state.order);
    if (state.page > 1) url.set("page", state.page);
    const next = `/${url.toString() ? `?${url}` : ""}`;
    if (next !== location.pathname + location.search) history.replaceState(null, "", next);

    if (controller) controller.abort();
    controller = new AbortController();
    grid.setAttribute("aria-busy", "true");
    let page;
    try {
      page = await get(
        `/api/deer${query({
          q: state.q,
          sex: state.sex,
          camera_id: state.camera_id,
          starred: state.starred ? "true" : null,
          sort: state.sort,
          order: state.order,
          limit: PAGE_SIZE,
          offset: (state.page - 1) * PAGE_SIZE,
        })}`,
        { signal: controller.signal },
      );
    } catch (err) {
      if (err.name === "AbortError") return;
      clear(grid, errorBox(err, load));
      clear(pager);
      summary.textContent = " ";
      return;
    } finally {
      grid.removeAttribute("aria-busy");
    }
    const pages = Math.max(1, Math.ceil(page.total / PAGE_SIZE));
    if (state.page > pages) {
      state.page = pages;
      return load();
    }
    summary.textContent = filtered() ? `${plural(page.total, "deer", "deer")} match` : plural(page.total, "deer", "deer");
    filters.hidden = !page.total && !filtered(); // nothing to filter in an empty collection
    if (!page.items.length) {
      clear(
        grid,
        filtered()
          ? emptyState("No deer match these filters", h("button", { type: "button", class: "btn", onclick: reset }, "Clear filters"))
          : emptyState(
              "No deer yet — upload photos",
              h("p", {}, h("a", { href: "/upload", class: "btn primary" }, "Upload photos"), " or run ", h("code", {}, "deerid ingest <folder>"), "."),
            ),
      );
      clear(pager);
      return;
    }
    clear(grid, page.items.map(deerCard));
    if (pages === 1) {
      clear(pager);
      return;
    }
    const first = page.offset + 1;
    const last = page.offset + page.items.length;
    clear(
      pager,
      h("button", { type: "button", class: "btn", disabled: state.page <= 1, onclick: () => go(state.page - 1) }, "‹ Previous"),
      h("span", { class: "muted" }, `${first}–${last} of ${page.total} · page ${state.page} of ${pages}`),
      h("button", { type: "button", class: "btn", disabled: state.page >= pages, onclick: () => go(state.page + 1) }, "Next ›"),
    );
  }

  function go(n) {
    state.page = n;
    load().then(() => window.scrollTo({ top: 0 }));
  }

  function reset() {
    Object.assign(state, { q: "", sex: "", camera_id: "", starred: false, page: 1 });
    starred.checked = false;
    search.value = "";
    sex.value = "";
    camera.value = "";
    load();
  }

  const changed = () => {
    state.q = search.value.trim();
    state.sex = sex.value;
    state.camera_id = camera.value;
    state.starred = starred.checked;
    if (sort.value !== state.sort) state.order = sort.value === "name" ? "asc" : "desc"; // A→Z, newest or most first
    state.sort = sort.value;
    state.page = 1;
    load();
  };
  search.addEventListener("input", debounce(changed, 300));
  for (const control of [sex, camera, sort, starred]) control.addEventListener("change", changed);
  order.addEventListener("click", () => {
    state.order = state.order === "desc" ? "asc" : "desc";
    state.page = 1;
    load();
  });

  await load();
  return { cleanup: () => controller && controller.abort() };
}
