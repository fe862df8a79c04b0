// The stacks page: status, program, expiry countdown, outputs (reveal for a signed-in caller),
// an update form per stack and a destroy button behind a confirmation.
import { SECRET, announce, api, describe, formatDuration, h, outputsList, token } from "./api.js";
import { TTL_CHOICES, clearErrors, configFields, field, readConfig, showError } from "./form.js";

const rows = document.getElementById("rows");
const schemas = new Map();
const TRANSITIONAL = new Set(["creating", "updating", "destroying"]);
const WATCH_MS = 3000;
let next = null;
let watching = null;

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

async function reveal(stack, cell, button) {
  if (button.getAttribute("aria-pressed") === "true") {
    cell.replaceChildren(outputsList(stack.outputs));
    button.setAttribute("aria-pressed", "false");
    button.textContent = "Reveal secrets";
    announce(`Secrets of ${stack.name} hidden.`);
    return;
  }
  try {
    const { data } = await api("GET", `/stacks/${encodeURIComponent(stack.name)}?show_secrets=true`);
    cell.replaceChildren(outputsList(data.outputs));
    button.setAttribute("aria-pressed", "true");
    button.textContent = "Hide secrets";
    announce(`Secrets of ${stack.name} shown.`);
  } catch (err) {
    document.getElementById("error").textContent = err.message;
  }
}

async function toggleEditor(stack, row, button) {
  const open = row.nextElementSibling?.classList.contains("editor") ? row.nextElementSibling : null;
  if (open) {
    open.remove();
    button.setAttribute("aria-expanded", "false");
    button.focus();
    return;
  }
  for (const other of document.querySelectorAll("tr.editor")) {
    other.remove();
  }
  for (const other of document.querySelectorAll("button[aria-expanded='true']")) {
    other.setAttribute("aria-expanded", "false");
  }
  let config;
  try {
    config = await schemaOf(stack.program);
  } catch (err) {
    document.getElementById("error").textContent = err.message;
    return;
  }
  const formError = h("p", { class: "error", role: "alert" });
  const ttl = h("select", {}, h("option", { value: "", text: "keep the current expiry" }),
    TTL_CHOICES.map(([seconds, text]) => h("option", { value: seconds, text: `${text} from now` })));
  const ttlLabel = (id) => h("label", { for: id, text: "Time to live" });
  const form = h("form", { novalidate: true, "aria-label": `Update ${stack.name}` },
    h("fieldset", {}, h("legend", { text: `Configuration of ${stack.name}` }), configFields(config, stack.config)),
    field("ttl", ttlLabel, ttl, "Only what you change is sent."),
    formError,
    h("div", { class: "actions" }, h("button", { type: "submit", text: "Update stack" }),
      h("button", { type: "button", class: "secondary", text: "Close", onclick: () => toggleEditor(stack, row, button) })));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
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
    try {
      const { data } = await api("PATCH", `/stacks/${encodeURIComponent(stack.name)}`, { body });
      location.assign(`operation.html?${new URLSearchParams({ id: data.operation.id })}`);
    } catch (err) {
      showError(form, err, formError);
    }
  });
  const editor = h("tr", { class: "editor", id: `editor-${stack.name}` }, h("td", { colspan: "6", class: "no-label" }, form));
  row.after(editor);
  button.setAttribute("aria-expanded", "true");
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
    try {
      const { data } = await api("DELETE", `/stacks/${encodeURIComponent(stack.name)}`);
      announce(`Destroying ${stack.name}.`);
      location.assign(`operation.html?${new URLSearchParams({ id: data.operation.id })}`);
    } catch (err) {
      document.getElementById("error").textContent = err.message;
      button.focus();
    }
  }, { once: true });
  dialog.showModal();
}

function row(stack) {
  const outputs = h("td", { "data-label": "Outputs" }, outputsList(stack.outputs));
  const hasSecret = Object.values(stack.outputs || {}).includes(SECRET);
  const tr = h("tr", { "data-stack": stack.name });
  const edit = h("button", { type: "button", class: "secondary", "aria-expanded": "false",
    "aria-controls": `editor-${stack.name}`, text: "Update", "aria-label": `Update ${stack.name}` });
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
  const error = document.getElementById("error");
  error.textContent = "";
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
    document.getElementById("empty").hidden = count > 0;
    announce(count === 1 ? "1 stack" : `${count} stacks`);
    watch();
  } catch (err) {
    error.textContent = err.message;
    announce("");
  }
}

// While a stack is being created, updated or destroyed, follow it and say when that is done.
function watch() {
  if (watching === null && rows.querySelector("tr[data-status='creating'], tr[data-status='updating'], tr[data-status='destroying']")) {
    watching = window.setTimeout(followChanges, WATCH_MS);
  }
}

async function followChanges() {
  watching = null;
  let listed;
  try {
    // The list, not each stack: a destroyed stack is then simply missing, not a 404.
    listed = (await api("GET", "/stacks?limit=100")).data;
  } catch (err) {
    document.getElementById("error").textContent = err.message;
    return;
  }
  const current = new Map(listed.stacks.map((stack) => [stack.name, stack]));
  for (const tr of rows.querySelectorAll("tr[data-stack]")) {
    const name = tr.dataset.stack;
    const stack = current.get(name);
    if (!TRANSITIONAL.has(tr.dataset.status) || (!stack && listed.next)) {
      continue;
    }
    if (!stack) {
      if (tr.nextElementSibling?.classList.contains("editor")) {
        tr.nextElementSibling.remove();
      }
      tr.remove();
      announce(`Stack ${name} is gone.`);
    } else if (stack.status !== tr.dataset.status) {
      const focused = tr.contains(document.activeElement) ? document.activeElement.getAttribute("aria-label") : null;
      const fresh = row(stack);
      tr.replaceWith(fresh);
      if (focused) {
        fresh.querySelector(`[aria-label="${CSS.escape(focused)}"]`)?.focus();
      }
      announce(`Stack ${name} is now ${stack.status}.`);
    }
  }
  document.getElementById("empty").hidden = rows.querySelector("tr[data-stack]") !== null;
  watch();
}

document.getElementById("refresh").addEventListener("click", () => load());
document.getElementById("more").addEventListener("click", () => load(true));
window.setInterval(tick, 1000);
load();
