// Bar charts as inline SVG: sightings over time, visits by hour, daylight, moon and season week;
// and a camera map drawn from coordinates alone (no map tiles: the dashboard works offline).

const NS = "http://www.w3.org/2000/svg";
const DAY = 86400000;

function s(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function dayNumber(iso) {
  const [y, m, d] = iso.split("-").map(Number);
  return Date.UTC(y, m - 1, d) / DAY;
}

function isoDay(n) {
  return new Date(n * DAY).toISOString().slice(0, 10);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

// Group day counts into bins the width of the chart can show: days, weeks or months.
export function binDays(byDay) {
  if (!byDay.length) return { unit: "day", bins: [] };
  const days = byDay.map((d) => ({ n: dayNumber(d.day), count: d.sightings }));
  const first = Math.min(...days.map((d) => d.n));
  const last = Math.max(...days.map((d) => d.n));
  const span = last - first + 1;
  if (span <= 92) {
    const bins = Array.from({ length: span }, (_, i) => ({ label: isoDay(first + i), count: 0 }));
    for (const d of days) bins[d.n - first].count += d.count;
    return { unit: "day", bins };
  }
  if (span <= 730) {
    const bins = Array.from({ length: Math.ceil(span / 7) }, (_, i) => ({
      label: `week of ${isoDay(first + i * 7)}`,
      short: isoDay(first + i * 7),
      count: 0,
    }));
    for (const d of days) bins[Math.floor((d.n - first) / 7)].count += d.count;
    return { unit: "week", bins };
  }
  const month = (n) => {
    const t = new Date(n * DAY);
    return t.getUTCFullYear() * 12 + t.getUTCMonth();
  };
  const m0 = month(first);
  const bins = Array.from({ length: month(last) - m0 + 1 }, (_, i) => {
    const y = Math.floor((m0 + i) / 12);
    const label = `${MONTHS[(m0 + i) % 12]} ${y}`;
    return { label, short: label, count: 0 };
  });
  for (const d of days) bins[month(d.n) - m0].count += d.count;
  return { unit: "month", bins };
}

function barChart(bins, { title, tickEvery, tickLabel, unit, noun = "sighting" }) {
  const W = 640;
  const H = 180;
  const left = 34;
  const right = 10;
  const top = 12;
  const bottom = 30;
  const max = Math.max(1, ...bins.map((b) => b.count));
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "chart",
    role: "img",
    "aria-label": title,
  });
  svg.append(s("title", {}, title));
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  // horizontal grid: 0, half, max
  const half = Math.round(max / 2);
  for (const v of half > 0 && half < max ? [0, half, max] : [0, max]) {
    const y = top + plotH - (v / max) * plotH;
    svg.append(s("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid" }));
    svg.append(s("text", { x: left - 6, y: y + 4, class: "axis-label", "text-anchor": "end" }, String(v)));
  }
  const slot = plotW / Math.max(bins.length, 1);
  const barW = Math.min(Math.max(slot * 0.78, 1), 42);
  bins.forEach((b, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    const hgt = (b.count / max) * plotH;
    const bar = s("rect", {
      x: x.toFixed(2),
      y: (top + plotH - hgt).toFixed(2),
      width: barW.toFixed(2),
      height: Math.max(hgt, b.count ? 1 : 0).toFixed(2),
      class: b.count ? "bar" : "bar empty",
      rx: Math.min(2, barW / 3),
    });
    bar.append(s("title", {}, `${b.label}: ${b.count} ${noun}${b.count === 1 ? "" : "s"}`));
    svg.append(bar);
    if (i % tickEvery === 0 || i === bins.length - 1) {
      const label = tickLabel(b, i);
      if (label !== null) {
        const anchor = bins.length === 1 ? "middle" : i === 0 ? "start" : i === bins.length - 1 ? "end" : "middle";
        const tx = anchor === "start" ? left + i * slot : anchor === "end" ? left + (i + 1) * slot : left + (i + 0.5) * slot;
        svg.append(s("text", { x: tx, y: H - 10, class: "axis-label", "text-anchor": anchor }, label));
      }
    }
  });
  svg.append(s("line", { x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, class: "baseline" }));
  svg.dataset.unit = unit;
  return svg;
}

export function timelineChart(byDay) {
  const { unit, bins } = binDays(byDay);
  const labelEvery = Math.max(1, Math.ceil(bins.length / 6));
  const last = bins.length - 1;
  const svg = barChart(bins, {
    title: `Sightings per ${unit}`,
    unit,
    tickEvery: labelEvery,
    // first and last always; one in between only where it keeps clear of the last
    tickLabel: (b, i) => (i === 0 || i === last || last - i >= labelEvery * 0.7 ? b.short || b.label : null),
  });
  svg.classList.add("timeline-chart");
  return svg;
}

const HOUR_NAMES = { 0: "midnight", 6: "6 am", 12: "noon", 18: "6 pm" };

export function hourChart(byHour, { noun = "sighting" } = {}) {
  const bins = byHour.map((count, hour) => ({
    label: `${String(hour).padStart(2, "0")}:00–${String(hour).padStart(2, "0")}:59`,
    count,
  }));
  const svg = barChart(bins, {
    title: `${noun[0].toUpperCase()}${noun.slice(1)}s by hour of day`,
    unit: "hour",
    noun,
    tickEvery: 6,
    tickLabel: (_b, i) => (i in HOUR_NAMES ? HOUR_NAMES[i] : null),
  });
  svg.classList.add("hour-chart");
  return svg;
}

// Named bins in a fixed order (daylight phases, moon phases): every label shown.
export function categoryChart(counts, order, { title, noun = "visit", cls = "", short = {} } = {}) {
  const bins = order.map((name) => ({ label: name, short: short[name] || name, count: counts[name] || 0 }));
  const svg = barChart(bins, { title, unit: "phase", noun, tickEvery: 1, tickLabel: (b) => b.short });
  if (cls) svg.classList.add(cls);
  return svg;
}

// Visits per week of the season: [{week_start, visits}], missing weeks drawn empty.
export function weekChart(byWeek, { noun = "visit" } = {}) {
  if (!byWeek.length) return null;
  const first = dayNumber(byWeek[0].week_start);
  const last = dayNumber(byWeek[byWeek.length - 1].week_start);
  const bins = Array.from({ length: Math.round((last - first) / 7) + 1 }, (_, i) => ({
    label: `week of ${isoDay(first + i * 7)}`,
    short: isoDay(first + i * 7),
    count: 0,
  }));
  for (const w of byWeek) bins[Math.round((dayNumber(w.week_start) - first) / 7)].count += w.visits;
  const every = Math.max(1, Math.ceil(bins.length / 5));
  const svg = barChart(bins, { title: "Visits by week of the season", unit: "week", noun, tickEvery: every, tickLabel: (b) => b.short });
  svg.classList.add("week-chart");
  return svg;
}

// Cameras as dots on their coordinates (equirectangular, scaled to their spread), sized by visits.
export function cameraMap(cameras, { onSelect } = {}) {
  const placed = cameras.filter((c) => c.latitude !== null && c.longitude !== null);
  const W = 640;
  const H = 360;
  const pad = 40;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart camera-map", role: "img", "aria-label": "Camera map" });
  svg.append(s("title", {}, "Cameras by their coordinates"));
  svg.append(s("rect", { x: 1, y: 1, width: W - 2, height: H - 2, class: "map-frame", rx: 6 }));
  if (!placed.length) {
    svg.append(s("text", { x: W / 2, y: H / 2, class: "axis-label", "text-anchor": "middle" }, "No camera has coordinates yet: set them on the Cameras page."));
    return svg;
  }
  const lats = placed.map((c) => c.latitude);
  const lons = placed.map((c) => c.longitude);
  const midLat = (Math.min(...lats) + Math.max(...lats)) / 2;
  const kx = Math.cos((midLat * Math.PI) / 180); // a degree of longitude is shorter away from the equator
  const spanX = Math.max((Math.max(...lons) - Math.min(...lons)) * kx, 1e-4);
  const spanY = Math.max(Math.max(...lats) - Math.min(...lats), 1e-4);
  const scale = Math.min((W - 2 * pad) / spanX, (H - 2 * pad) / spanY);
  const cx = (Math.min(...lons) + Math.max(...lons)) / 2;
  const x = (lon) => W / 2 + (lon - cx) * kx * scale;
  const y = (lat) => H / 2 - (lat - midLat) * scale;
  const most = Math.max(1, ...placed.map((c) => c.visits || 0));
  // A scale bar: how far 1/5 of the width is on the ground.
  const metres = ((W - 2 * pad) / 5 / scale) * 111320;
  const bar = metres >= 1000 ? `${(metres / 1000).toFixed(1)} km` : `${Math.round(metres)} m`;
  svg.append(s("line", { x1: pad, x2: pad + (W - 2 * pad) / 5, y1: H - 14, y2: H - 14, class: "baseline" }));
  svg.append(s("text", { x: pad, y: H - 20, class: "axis-label" }, bar));
  for (const c of placed) {
    const r = 6 + 14 * Math.sqrt((c.visits || 0) / most);
    const g = s("g", { class: "camera-dot", tabindex: 0, "data-camera": c.id });
    g.append(s("circle", { cx: x(c.longitude).toFixed(1), cy: y(c.latitude).toFixed(1), r: r.toFixed(1) }));
    g.append(s("text", { x: (x(c.longitude) + r + 4).toFixed(1), y: (y(c.latitude) + 4).toFixed(1), class: "map-label" }, `${c.name} (${c.visits || 0})`));
    g.append(s("title", {}, `${c.name}: ${c.visits || 0} visits this season, ${c.latitude.toFixed(5)}, ${c.longitude.toFixed(5)}`));
    if (onSelect) g.addEventListener("click", () => onSelect(c));
    svg.append(g);
  }
  return svg;
}
