// Small DOM helpers. Text from the API always goes in as text, never as markup.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "value") node.value = value;
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

// Capture times are the camera's wall clock (corrected by its offset): shown as written, no time zones.
export function when(iso, { time = true } = {}) {
  if (!iso) return "—";
  const [d, t = ""] = String(iso).split("T");
  return time && t ? `${d} ${t.slice(0, 5)}` : d;
}

export function plural(n, word, many) {
  return `${n} ${n === 1 ? word : many || `${word}s`}`;
}

export function similarity(value) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(3);
}

export const SEX_LABEL = { buck: "Buck", doe: "Doe", fawn: "Fawn", unknown: "Unknown" };
export const ASSIGNMENT_LABEL = {
  matched: "matched automatically",
  new: "started a profile",
  manual: "placed by a person",
};

// What a sighting's similarity means depends on how it was assigned.
export function similarityWords(s) {
  if (s.similarity === null || s.similarity === undefined) return "";
  if (s.assignment === "new") return `closest deer ${similarity(s.similarity)}`;
  return `similarity ${similarity(s.similarity)}`;
}

export function sexBadge(sex) {
  return h("span", { class: `badge sex-${sex}` }, SEX_LABEL[sex] || sex);
}

export function crop(url, alt, { lazy = false, cls = "crop" } = {}) {
  if (!url) return h("div", { class: `${cls} crop-missing`, role: "img", "aria-label": "no picture" }, "no picture");
  const img = h("img", { class: cls, src: url, alt, loading: lazy ? "lazy" : undefined, decoding: "async" });
  img.addEventListener("error", () => img.classList.add("crop-broken"), { once: true });
  return img;
}

export function emptyState(title, ...body) {
  return h("div", { class: "empty" }, h("h2", {}, title), ...body.map((b) => (typeof b === "string" ? h("p", {}, b) : b)));
}

export function errorBox(err, retry) {
  return h(
    "div",
    { class: "error-box", role: "alert" },
    h("strong", {}, "Something went wrong. "),
    err.message || String(err),
    retry ? h("button", { type: "button", class: "btn small", onclick: retry }, "Try again") : null,
  );
}

// Notices: a short stack at the top right. Errors stay until closed.
export function notify(message, { kind = "ok", action, timeout } = {}) {
  const box = document.getElementById("notices");
  const close = () => note.remove();
  const note = h(
    "div",
    { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", { class: "notice-text" }, message),
    action
      ? h(
          "button",
          {
            type: "button",
            class: "btn small",
            onclick: async () => {
              close();
              await action.run();
            },
          },
          action.label,
        )
      : null,
    h("button", { type: "button", class: "notice-close", "aria-label": "Close", onclick: close }, "×"),
  );
  box.append(note);
  const ms = timeout ?? (kind === "error" ? 0 : action ? 30000 : 6000);
  if (ms) setTimeout(close, ms);
  return note;
}

export function notifyError(err, prefix = "") {
  if (err && err.name === "AbortError") return;
  notify(`${prefix}${err.message || err}`, { kind: "error" });
}

// A modal built on <dialog>; resolves with what `build` hands to `done`, or null when closed.
export function modal(title, build, { wide = false, cls = "" } = {}) {
  return new Promise((resolve) => {
    let result = null;
    const dialog = h("dialog", { class: `modal${wide ? " wide" : ""}${cls ? ` ${cls}` : ""}` });
    const done = (value) => {
      result = value;
      dialog.close();
    };
    const body = h("div", { class: "modal-body" });
    dialog.append(
      h(
        "div",
        { class: "modal-head" },
        h("h2", {}, title),
        h("button", { type: "button", class: "notice-close", "aria-label": "Close", onclick: () => dialog.close() }, "×"),
      ),
      body,
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    build(body, done);
    dialog.showModal();
  });
}

export function debounce(fn, ms = 250) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export function busy(button, promise) {
  button.disabled = true;
  button.classList.add("busy");
  return promise.finally(() => {
    button.disabled = false;
    button.classList.remove("busy");
  });
}

// What is known about where a crop comes from: "2024-10-03 06:12 · Feeder · event 12 · track 40".
// short: the day and the event/track only, for small crops beside facts that name the cameras already.
export function cropMeta(c, { short = false } = {}) {
  return [
    c.captured_at ? when(c.captured_at, { time: !short }) : null,
    short ? null : c.camera,
    // no-break spaces: "event 12" never splits over two lines
    c.event_id !== null && c.event_id !== undefined ? `event\u00a0${c.event_id}` : null,
    c.track_id !== null && c.track_id !== undefined ? `track\u00a0${c.track_id}` : null,
  ]
    .filter(Boolean)
    .join(" · ");
}

// The whole photo a crop was cut from, as large as the window allows; the box is outlined when known.
export function showPhoto(c, title = "The whole photo") {
  return modal(
    title,
    (body) => {
      const frame = h("div", { class: "photo-frame" });
      const img = h("img", { class: "photo-full", src: c.image_url, alt: `The photo of sighting ${c.detection_id}` });
      frame.append(img);
      if (Array.isArray(c.bbox) && c.bbox.length === 4) {
        // MegaDetector boxes are fractions of the photo (x, y, w, h): placed through the CSSOM, which the CSP allows
        const box = h("div", { class: "photo-box" });
        const [x, y, w, bh] = c.bbox;
        Object.assign(box.style, { left: `${x * 100}%`, top: `${y * 100}%`, width: `${w * 100}%`, height: `${bh * 100}%` });
        frame.append(box);
      }
      img.addEventListener("error", () => img.classList.add("crop-broken"), { once: true });
      body.append(
        frame,
        h(
          "p",
          { class: "muted small photo-meta" },
          cropMeta(c) || "No time or camera recorded.",
          " · ",
          h("a", { href: c.image_url, target: "_blank", rel: "noopener" }, "open on its own"),
        ),
      );
    },
    { cls: "photo-modal" },
  );
}

// A candidate's score: a calibrated probability in per cent, else the raw similarity, said as such.
export function scoreWords(value, calibrated) {
  if (value === null || value === undefined) return { label: calibrated ? "probability" : "similarity", text: "—" };
  return calibrated ? { label: "probability", text: `${Math.round(Number(value) * 100)} %` } : { label: "similarity", text: Number(value).toFixed(3) };
}

// A crop with where it comes from; a click shows the whole photo.
export function cropFigure(c, { cls = "", alt, onFocus, short = false } = {}) {
  const meta = cropMeta(c, { short });
  const full = cropMeta(c);
  const open = h(
    "button",
    { type: "button", class: "crop-open", title: `Show the whole photo${full ? ` (${full})` : ""}`, "aria-label": `Show the whole photo of ${alt}` },
    crop(c.crop_url, alt, { cls: "crop" }),
  );
  open.addEventListener("click", () => showPhoto(c));
  const fig = h(
    "figure",
    { class: `crop-fig ${cls}`.trim(), dataset: { detection: c.detection_id } },
    open,
    meta ? h("figcaption", { class: "crop-meta" }, meta) : null,
  );
  if (onFocus) {
    fig.addEventListener("mouseenter", () => onFocus(c));
    open.addEventListener("focus", () => onFocus(c));
  }
  return fig;
}
