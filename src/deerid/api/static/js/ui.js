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
export function modal(title, build, { wide = false } = {}) {
  return new Promise((resolve) => {
    let result = null;
    const dialog = h("dialog", { class: `modal${wide ? " wide" : ""}` });
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
