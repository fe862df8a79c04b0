// Shared by every page: the token, API calls, safe DOM building, announcements, the header.
// Server data only ever reaches the page as text (textContent, attributes): never as HTML.

const TOKEN_KEY = "burner-api-token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) {
    sessionStorage.setItem(TOKEN_KEY, value);
  } else {
    sessionStorage.removeItem(TOKEN_KEY);
  }
}

export class ApiError extends Error {
  constructor(status, body) {
    const title = body.title || `HTTP ${status}`;
    super(body.description ? `${title}: ${body.description}` : title);
    this.status = status;
    this.body = body;
  }
}

// Call the API with the bearer token (never a cookie: credentials are omitted). A 401 sends
// the user to the sign-in page unless `signIn` is false. Resolves to {status, data, headers}.
export async function api(method, path, { body, headers = {}, signIn = true } = {}) {
  const sent = { Accept: "application/json", ...headers };
  const held = token();
  if (held) {
    sent.Authorization = `Bearer ${held}`;
  }
  if (body !== undefined) {
    sent["Content-Type"] = "application/json";
  }
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, { title: "Network error", description: "the server could not be reached" });
  }
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 401 && signIn) {
    goToSignIn(held ? "rejected" : "required");
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, data);
  }
  return { status: resp.status, data, headers: resp.headers };
}

export function goToSignIn(reason) {
  setToken(null);
  const next = location.pathname + location.search;
  location.assign(`signin.html?${new URLSearchParams({ next, reason })}`);
}

// Build an element: attributes as strings, `on...` as listeners, children as nodes or text.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "text") {
      el.textContent = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) {
      el.append(child instanceof Node ? child : String(child));
    }
  }
  return el;
}

// Say something in the page's polite live region (clear first, so a repeat is announced too).
export function announce(message) {
  const region = document.getElementById("status");
  region.textContent = "";
  window.setTimeout(() => {
    region.textContent = message;
  }, 50);
}

export function param(name) {
  return new URLSearchParams(location.search).get(name);
}

export function describe(value) {
  if (value === null || value === undefined) {
    return "";
  }
  return typeof value === "string" ? value : JSON.stringify(value);
}

export const SECRET = "[secret]";

// Outputs as a definition list; masked secrets read as such.
export function outputsList(outputs) {
  const entries = Object.entries(outputs || {});
  if (entries.length === 0) {
    return h("span", { class: "muted", text: "none" });
  }
  return h("dl", { class: "outputs" }, entries.flatMap(([name, value]) => [
    h("dt", { text: name }),
    value === SECRET
      ? h("dd", { "data-output": name, "data-secret": "masked" }, h("span", { "aria-hidden": "true", text: "••••••" }),
        h("span", { class: "muted", text: " (secret)" }))
      : h("dd", { "data-output": name, text: describe(value) }),
  ]));
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const parts = [];
  const d = Math.floor(s / 86400);
  const hr = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) parts.push(`${d}d`);
  if (d || hr) parts.push(`${hr}h`);
  if (d || hr || m) parts.push(`${m}m`);
  parts.push(`${s % 60}s`);
  return parts.join(" ");
}

// The header's sign-in slot: "Sign in" without a token, else "Sign out".
function authControl() {
  const slot = document.getElementById("auth");
  if (!slot) {
    return;
  }
  if (token()) {
    slot.replaceChildren(h("button", {
      type: "button",
      class: "secondary",
      text: "Sign out",
      onclick: () => {
        setToken(null);
        location.assign("signin.html?reason=signed-out");
      },
    }));
  }
}

authControl();
