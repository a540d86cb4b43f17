// The JSON API: the change token, fetch with errors in words.

const STORE_KEY = "deerid-token";

export function token() {
  const meta = document.querySelector('meta[name="deerid-token"]');
  if (meta && meta.content) return meta.content;
  try {
    return localStorage.getItem(STORE_KEY) || "";
  } catch {
    return "";
  }
}

export function tokenSource() {
  const meta = document.querySelector('meta[name="deerid-token"]');
  if (meta && meta.content) return "server";
  return token() ? "stored" : "none";
}

export function saveToken(value) {
  const meta = document.querySelector('meta[name="deerid-token"]');
  if (meta) meta.remove(); // a typed token replaces whatever the server handed out
  if (value) localStorage.setItem(STORE_KEY, value);
  else localStorage.removeItem(STORE_KEY);
}

export class ApiError extends Error {
  // body: the parsed JSON the server answered with, when it did (a 409 carries the current state)
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// {"detail": "..."} or FastAPI's list of validation errors, as one readable sentence.
export function describeDetail(detail) {
  if (detail == null) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => {
        const where = (d.loc || []).filter((p) => p !== "body" && p !== "query" && p !== "path").join(".");
        return where ? `${where}: ${d.msg}` : d.msg;
      })
      .join("; ");
  }
  if (typeof detail === "object") return describeDetail(detail.message ?? detail.reason ?? detail.detail ?? JSON.stringify(detail));
  return String(detail);
}

const STATUS_WORDS = {
  400: "The request was not understood",
  401: "The API token is missing or wrong",
  403: "Not allowed",
  404: "Not found",
  409: "Conflict",
  413: "Too large",
  422: "Not accepted",
  500: "The server failed",
  502: "The server is not answering",
  503: "The server is busy",
};

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

async function errorFrom(response) {
  let detail = "";
  let body = null;
  try {
    body = await response.json();
    detail = describeDetail(body.detail);
  } catch {
    /* not JSON */
  }
  const words = STATUS_WORDS[response.status] || `HTTP ${response.status}`;
  if (response.status === 401) {
    onUnauthorized();
    return new ApiError(401, "This needs the API token — it is missing or wrong. Set it with “Set token” in the top bar.");
  }
  const error = new ApiError(response.status, detail ? `${words}: ${detail}` : words, body);
  error.detail = detail; // the server's own words, without the status
  return error;
}

export async function request(method, url, { body, form, signal } = {}) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: payload, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "Could not reach the deerid server. Is it still running?");
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  return response.json();
}

export const get = (url, opts) => request("GET", url, opts);
export const post = (url, body) => request("POST", url, { body });
export const patch = (url, body) => request("PATCH", url, { body });
export const del = (url) => request("DELETE", url);

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// Multipart upload with progress of the bytes sent (fetch cannot report that).
export function upload(url, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("Accept", "application/json");
    const t = token();
    if (t) xhr.setRequestHeader("Authorization", `Bearer ${t}`);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded, e.total);
    xhr.onerror = () => reject(new ApiError(0, "The upload was cut off: could not reach the deerid server."));
    xhr.onload = async () => {
      const response = new Response(xhr.responseText, { status: xhr.status });
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(new ApiError(xhr.status, "The server answered the upload with something that is not JSON."));
        }
      } else reject(await errorFrom(response));
    };
    xhr.send(form);
  });
}
