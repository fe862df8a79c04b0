// The stacks page: status, program, expiry countdown, outputs (reveal for a signed-in caller),
// an update form per stack and a destroy button behind a confirmation.
import { SECRET, announce, api, describe, formatDuration, h, outputsList, token } from "./api.js";
import { TTL_CHOICES, clearErrors, configFields, field, readConfig, showError } from "./form.js";

const rows = document.getElementById("rows");
const error = document.getElementById("error");
const schemas = new Map();
const TRANSITIONAL = new Set(["creating", "updating", "destroying"]);
const WATCH_MS = 3000;
const RETRY_MAX_MS = 30000;
// A timer cannot wait longer than ~24 days; far expiries are looked at again within the hour.
const WAKE_MAX_MS = 3600 * 1000;
let next = null;
let watching = null;
let looking = false;
let retryMs = WATCH_MS;
let followError = null;

function countdown(expires) {
  if (!expires) {
    return h("span", { class: "muted", text: "never" });
  }
  return h("time", { datetime: expires, "data-expires": expires, text: remaining(expires) });
}

function remaining(expires) {
  const seconds = (Date.parse(expires) - Date.now()) / 1000;
  return seconds > 0 ? formatDuration(seconds) : "expired";
}

function tick() {
  for (const time of document.querySelectorAll("time[data-expires]")) {
    time.textContent = remaining(time.dataset.expires);
  }
}

async function schemaOf(program) {
  if (!schemas.has(program)) {
    const { data } = await api("GET", `/programs/${encodeURIComponent(program)}`);
    schemas.set(program, data.config);
  }
  return schemas.get(program);
}

function operationLink(id, text) {
  return h("a", { href: `operation.html?${new URLSearchParams({ id })}`, text });
}

function rowOf(name) {
  return [...rows.querySelectorAll("tr[data-stack]")].find((tr) => tr.dataset.stack === name) || null;
}

function editorOf(tr) {
  return tr.nextElementSibling?.classList.contains("editor") ? tr.nextElementSibling : null;
}

function showEmpty() {
  document.getElementById("empty").hidden = rows.querySelector("tr[data-stack]") !== null;
}

// The stack no longer exists (destroyed elsewhere, or expired): its row goes.
function gone(name) {
  const tr = rowOf(name);
  if (tr) {
    editorOf(tr)?.remove();
    tr.remove();
  }
  showEmpty();
  announce(`Stack ${name} is gone.`);
}

// An action's failure: a 404 means the stack is gone; anything else is said as it is.
function failed(stack, err) {
  if (err.status === 404) {
    gone(stack.name);
    return true;
  }
  error.textContent = err.message;
  return false;
}

async function reveal(stack, cell, button) {
  if (button.getAttribute("aria-pressed") === "true") {
    cell.replaceChildren(outputsList(stack.outputs));
    button.setAttribute("aria-pressed", "false");
    button.textContent = "Reveal secrets";
    announce(`Secrets of ${stack.name} hidden.`);
    return;
  }
  button.disabled = true;
  try {
    const { data } = await api("GET", `/stacks/${encodeURIComponent(stack.name)}?show_secrets=true`);
    cell.replaceChildren(outputsList(data.outputs));
    button.setAttribute("aria-pressed", "true");
    button.textContent = "Hide secrets";
    announce(`Secrets of ${stack.name} shown.`);
  } catch (err) {
    failed(stack, err);
  } finally {
    button.disabled = false;
  }
}

function closeEditors() {
  for (const other of document.querySelectorAll("tr.editor")) {
    other.remove();
  }
  for (const other of document.querySelectorAll("button[aria-expanded='true']")) {
    other.setAttribute("aria-expanded", "false");
    other.removeAttribute("aria-controls");
  }
}

async function submitUpdate(event, stack, ttl) {
  event.preventDefault();
  const form = event.currentTarget;
  // One update at a time: a second one would only be refused while the first runs.
  if (form.getAttribute("aria-busy") === "true") {
    return;
  }
  const submit = form.querySelector("button[type='submit']");
  const formError = form.querySelector(".form-error");
  clearErrors(form);
  formError.textContent = "";
  const body = {};
  const changed = readConfig(form, { changedOnly: true });
  if (Object.keys(changed).length) {
    body.config = changed;
  }
  if (ttl.value) {
    body.ttl = Number(ttl.value);
  }
  if (!Object.keys(body).length) {
    formError.textContent = "Nothing changed.";
    return;
  }
  form.setAttribute("aria-busy", "true");
  submit.disabled = true;
  try {
    const { data } = await api("PATCH", `/stacks/${encodeURIComponent(stack.name)}`, { body });
    location.assign(`operation.html?${new URLSearchParams({ id: data.operation.id })}`);
  } catch (err) {
    if (err.status === 404) {
      gone(stack.name);
    } else {
      showError(form, err, formError);
    }
  } finally {
    form.removeAttribute("aria-busy");
    submit.disabled = false;
  }
}

async function toggleEditor(stack, row, button) {
  if (editorOf(row)) {
    closeEditors();
    button.focus();
    return;
  }
  closeEditors();
  let config;
  try {
    config = await schemaOf(stack.program);
  } catch (err) {
    error.textContent = err.message;
    return;
  }
  const ttl = h("select", {}, h("option", { value: "", text: "keep the current expiry" }),
    TTL_CHOICES.map(([seconds, text]) => h("option", { value: seconds, text: `${text} from now` })));
  const ttlLabel = (id) => h("label", { for: id, text: "Time to live" });
  const form = h("form", { novalidate: true, "aria-label": `Update ${stack.name}` },
    h("fieldset", {}, h("legend", { text: `Configuration of ${stack.name}` }), configFields(config, stack.config)),
    field("ttl", ttlLabel, ttl, "Only what you change is sent."),
    h("p", { class: "error form-error", role: "alert" }),
    h("div", { class: "actions" }, h("button", { type: "submit", text: "Update stack" }),
      h("button", { type: "button", class: "secondary", text: "Close", onclick: () => toggleEditor(stack, row, button) })));
  form.addEventListener("submit", (event) => submitUpdate(event, stack, ttl));
  const editor = h("tr", { class: "editor", id: `editor-${stack.name}` }, h("td", { colspan: "6", class: "no-label" }, form));
  row.after(editor);
  button.setAttribute("aria-expanded", "true");
  button.setAttribute("aria-controls", editor.id);
  form.querySelector("input, select")?.focus();
}

function confirmDestroy(stack, button) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent =
    `Stack ${stack.name} and all its resources will be destroyed. This cannot be undone.`;
  dialog.returnValue = "";
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "destroy") {
      button.focus();
      return;
    }
    button.disabled = true;
    try {
      const { data } = await api("DELETE", `/stacks/${encodeURIComponent(stack.name)}`);
      announce(`Destroying ${stack.name}.`);
      location.assign(`operation.html?${new URLSearchParams({ id: data.operation.id })}`);
    } catch (err) {
      if (!failed(stack, err)) {
        button.focus();
      }
    } finally {
      button.disabled = false;
    }
  }, { once: true });
  dialog.showModal();
}

function row(stack) {
  const outputs = h("td", { "data-label": "Outputs" }, outputsList(stack.outputs));
  const hasSecret = Object.values(stack.outputs || {}).includes(SECRET);
  const tr = h("tr", { "data-stack": stack.name });
  // aria-controls only once the editor exists (see toggleEditor).
  const edit = h("button", { type: "button", class: "secondary", "aria-expanded": "false",
    text: "Update", "aria-label": `Update ${stack.name}` });
  edit.addEventListener("click", () => toggleEditor(stack, tr, edit));
  const destroy = h("button", { type: "button", class: "danger", text: "Destroy", "aria-label": `Destroy ${stack.name}` });
  destroy.addEventListener("click", () => confirmDestroy(stack, destroy));
  const actions = [edit, destroy];
  if (hasSecret && token()) {
    const show = h("button", { type: "button", class: "secondary", "aria-pressed": "false", text: "Reveal secrets",
      "aria-label": `Reveal the secrets of ${stack.name}` });
    show.addEventListener("click", () => reveal(stack, outputs, show));
    actions.unshift(show);
  }
  tr.dataset.status = stack.status;
  tr.dataset.expires = stack.expires || "";
  tr.append(
    h("td", { "data-label": "Name" }, h("span", { class: "mono", text: stack.name }),
      stack.last_operation ? h("div", { class: "help" }, operationLink(stack.last_operation, "last operation")) : null),
    h("td", { "data-label": "Program", text: stack.program }),
    h("td", { "data-label": "Status" }, h("span", { class: `badge ${stack.status}`, text: stack.status })),
    h("td", { "data-label": "Expires in" }, countdown(stack.expires)),
    outputs,
    h("td", { "data-label": "Actions" }, h("div", { class: "actions" }, actions)));
  return tr;
}

async function load(more = false) {
  error.textContent = "";
  followError = null;
  announce("Loading the stacks…");
  const query = new URLSearchParams({ limit: "50" });
  if (more && next) {
    query.set("after", describe(next));
  }
  try {
    const { data } = await api("GET", `/stacks?${query}`);
    const built = data.stacks.map(row);
    if (more) {
      rows.append(...built);
    } else {
      rows.replaceChildren(...built);
    }
    next = data.next;
    document.getElementById("more").hidden = !next;
    const count = rows.querySelectorAll("tr[data-stack]").length;
    showEmpty();
    announce(count === 1 ? "1 stack" : `${count} stacks`);
    watch();
  } catch (err) {
    error.textContent = err.message;
    announce("");
  }
}

function expired(tr) {
  return tr.dataset.expires !== "" && Date.parse(tr.dataset.expires) <= Date.now();
}

// A stack being created, updated or destroyed, or a ready one past its expiry (the server is
// about to destroy it), is followed until it settles or is gone.
function inFlux(tr) {
  return TRANSITIONAL.has(tr.dataset.status) || (tr.dataset.status === "ready" && expired(tr));
}

// (Re)arm the look at the stacks, unless one is under way: it arms the next when done.
function watch(delay = WATCH_MS) {
  window.clearTimeout(watching);
  watching = null;
  if (looking) {
    return;
  }
  const shown = [...rows.querySelectorAll("tr[data-stack]")];
  if (shown.some(inFlux)) {
    watching = window.setTimeout(followChanges, delay);
    return;
  }
  const expiries = shown.filter((tr) => tr.dataset.status === "ready" && tr.dataset.expires !== "")
    .map((tr) => Date.parse(tr.dataset.expires));
  if (expiries.length) {
    const wait = Math.min(Math.max(Math.min(...expiries) - Date.now(), 0) + WATCH_MS, WAKE_MAX_MS);
    watching = window.setTimeout(followChanges, wait);
  }
}

// Every stack the server has, page by page, until each row shown is accounted for.
async function listed() {
  const shown = new Set([...rows.querySelectorAll("tr[data-stack]")].map((tr) => tr.dataset.stack));
  const found = new Map();
  let after = null;
  do {
    const query = new URLSearchParams({ limit: "100" });
    if (after) {
      query.set("after", describe(after));
    }
    // The list, not each stack: a destroyed stack is then simply missing, not a 404.
    const { data } = await api("GET", `/stacks?${query}`);
    for (const stack of data.stacks) {
      found.set(stack.name, stack);
      shown.delete(stack.name);
    }
    after = data.next;
  } while (after && shown.size);
  return found;
}

async function followChanges() {
  watching = null;
  looking = true;
  let current;
  try {
    current = await listed();
  } catch (err) {
    // A failed look is no reason to stop following: look again, a little later each time.
    followError = `Could not follow the stacks (${err.message}); trying again.`;
    error.textContent = followError;
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    looking = false;
    watch(retryMs);
    return;
  }
  looking = false;
  retryMs = WATCH_MS;
  if (followError !== null && error.textContent === followError) {
    error.textContent = "";
  }
  followError = null;
  for (const tr of rows.querySelectorAll("tr[data-stack]")) {
    const name = tr.dataset.stack;
    const stack = current.get(name);
    if (!stack) {
      gone(name);
    } else if (stack.status !== tr.dataset.status || (stack.expires || "") !== tr.dataset.expires) {
      const focused = tr.contains(document.activeElement) ? document.activeElement.getAttribute("aria-label") : null;
      // An open editor describes the stack as it was.
      if (editorOf(tr)) {
        closeEditors();
      }
      const fresh = row(stack);
      tr.replaceWith(fresh);
      if (focused) {
        fresh.querySelector(`[aria-label="${CSS.escape(focused)}"]`)?.focus();
      }
      if (stack.status !== tr.dataset.status) {
        announce(`Stack ${name} is now ${stack.status}.`);
      }
    }
  }
  showEmpty();
  watch();
}

document.getElementById("refresh").addEventListener("click", () => load());
document.getElementById("more").addEventListener("click", () => load(true));
window.setInterval(tick, 1000);
load();
