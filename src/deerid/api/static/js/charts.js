// Bar charts as inline SVG: sightings over time and by hour of day.

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

function barChart(bins, { title, tickEvery, tickLabel, unit }) {
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
    bar.append(s("title", {}, `${b.label}: ${b.count} ${b.count === 1 ? "sighting" : "sightings"}`));
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

export function hourChart(byHour) {
  const bins = byHour.map((count, hour) => ({
    label: `${String(hour).padStart(2, "0")}:00–${String(hour).padStart(2, "0")}:59`,
    count,
  }));
  const svg = barChart(bins, {
    title: "Sightings by hour of day",
    unit: "hour",
    tickEvery: 6,
    tickLabel: (_b, i) => (i in HOUR_NAMES ? HOUR_NAMES[i] : null),
  });
  svg.classList.add("hour-chart");
  return svg;
}
