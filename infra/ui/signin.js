// The sign-in page: checks a token against the API before keeping it for this tab.
import { announce, api, setToken, token } from "./api.js";

const REASONS = {
  required: "This server needs its API token. Sign in to go on.",
  rejected: "Your token was not accepted. Sign in again.",
  "signed-out": "You are signed out.",
};

// Only back to a portal page: `next` comes from the address bar.
function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "";
  return /^\/ui\/[a-z0-9-]*(\.html)?(\?[^#]*)?$/.test(next) ? next : "./";
}

async function serverIsOpen() {
  const held = token();
  setToken(null);
  try {
    await api("GET", "/programs", { signIn: false });
    return true;
  } catch {
    return false;
  } finally {
    setToken(held);
  }
}

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById("token");
  const error = document.getElementById("token-error");
  const button = document.getElementById("submit");
  const value = input.value.trim();
  error.textContent = "";
  input.removeAttribute("aria-invalid");
  if (!value) {
    error.textContent = "Enter the API token.";
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  button.disabled = true;
  announce("Checking the token…");
  setToken(value);
  try {
    await api("GET", "/programs", { signIn: false });
    announce("Signed in.");
    location.assign(nextPage());
  } catch (err) {
    setToken(null);
    error.textContent = err.status === 401
      ? "Wrong token: the server did not accept it. Check it and try again."
      : `Could not check the token. ${err.message}`;
    input.setAttribute("aria-invalid", "true");
    input.focus();
    announce("");
  } finally {
    button.disabled = false;
  }
}

async function start() {
  const why = new URLSearchParams(location.search).get("reason");
  if (REASONS[why]) {
    const note = document.getElementById("reason");
    note.textContent = REASONS[why];
    note.hidden = false;
  }
  // Sent here by a 401: the server is known to want a token, no need to ask it again.
  if (why !== "required" && why !== "rejected" && await serverIsOpen()) {
    announce("This server does not ask for a token: every page works without signing in.");
    return;
  }
  const form = document.getElementById("signin");
  form.hidden = false;
  form.addEventListener("submit", signIn);
  document.getElementById("token").focus();
}

start();
