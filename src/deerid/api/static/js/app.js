// The dashboard shell: routes paths to pages, keeps the nav bar and the token.

import { saveToken, setUnauthorizedHandler, tokenSource } from "./api.js";
import { cameraPage } from "./pages/cameras.js";
import { deerPage } from "./pages/deer.js";
import { galleryPage } from "./pages/gallery.js";
import { reviewPage } from "./pages/review.js";
import { seasonPage } from "./pages/season.js";
import { uploadPage } from "./pages/upload.js";
import { clear, errorBox, h, modal } from "./ui.js";

const ROUTES = [
  [/^\/$/, "gallery", galleryPage],
  [/^\/deer\/([0-9a-fA-F-]{36})$/, "gallery", deerPage],
  [/^\/review$/, "review", reviewPage],
  [/^\/season$/, "season", seasonPage],
  [/^\/cameras$/, "cameras", cameraPage],
  [/^\/upload$/, "upload", uploadPage],
];

const root = document.getElementById("app");
let current = null; // {cleanup} of the page on screen

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

async function render() {
  if (current && current.cleanup) current.cleanup();
  current = null;
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const found = ROUTES.map(([re, nav, page]) => [path.match(re), nav, page]).find(([m]) => m);
  for (const a of document.querySelectorAll("[data-nav]")) {
    const on = found && a.dataset.nav === found[1] && !a.classList.contains("brand");
    a.classList.toggle("active", Boolean(on));
    if (on) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!found) {
    clear(root, h("div", { class: "empty" }, h("h2", {}, "No such page"), h("p", {}, h("a", { href: "/" }, "Back to the deer"))));
    return;
  }
  const [match, , page] = found;
  const view = h("div", { class: "view" });
  clear(root, view);
  try {
    current = (await page(view, { params: match.slice(1), query: new URLSearchParams(location.search), navigate })) || null;
  } catch (err) {
    clear(view, errorBox(err, render));
  }
}

// Links inside the app change the page without reloading it.
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/static/")) return;
  e.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search);
});
window.addEventListener("popstate", render);

// ---- the token -------------------------------------------------------------------------------

const tokenButton = document.getElementById("token-state");

function showTokenState() {
  const source = tokenSource();
  tokenButton.hidden = false;
  tokenButton.classList.toggle("missing", source === "none");
  tokenButton.textContent = source === "server" ? "Token: from this machine" : source === "stored" ? "Token: saved" : "Set token";
  tokenButton.title =
    source === "server"
      ? "The server handed this page its change token because you are on the same machine."
      : "Changes need the API token (printed by `deerid serve`, or DEERID_API_TOKEN).";
}

let asking = null;
export function askToken() {
  if (asking) return asking;
  asking = modal("API token", (body, done) => {
    const input = h("input", { type: "password", id: "token-input", autocomplete: "off", required: true, placeholder: "token" });
    body.append(
      h(
        "p",
        {},
        "Changes (and, from another machine, every read) need the API token. ",
        h("code", {}, "deerid serve"),
        " prints it; it is also in ",
        h("code", {}, "<data dir>/api_token"),
        ".",
      ),
      h(
        "form",
        {
          class: "row",
          onsubmit: (e) => {
            e.preventDefault();
            saveToken(input.value.trim());
            done(true);
          },
        },
        h("label", { for: "token-input", class: "sr-only" }, "API token"),
        input,
        h("button", { type: "submit", class: "btn primary" }, "Save token"),
        tokenSource() === "stored" ? h("button", { type: "button", class: "btn", onclick: () => (saveToken(""), done(true)) }, "Forget") : null,
      ),
      h("p", { class: "muted small" }, "It is kept in this browser (localStorage) for this site only."),
    );
    setTimeout(() => input.focus(), 0);
  }).then((saved) => {
    asking = null;
    showTokenState();
    // a page that could not load for want of the token loads now; a half-filled form is left alone
    if (saved && root.querySelector(".error-box")) render();
    return saved;
  });
  return asking;
}

tokenButton.addEventListener("click", askToken);
setUnauthorizedHandler(() => {
  showTokenState();
  tokenButton.classList.add("missing");
  askToken();
});

showTokenState();
render();
