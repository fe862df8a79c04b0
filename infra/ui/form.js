// Form fields generated from a program's config schema, the reading of their values, and the
// server's 400 shown next to the field it names.
import { describe, h } from "./api.js";

export const TTL_CHOICES = [
  [900, "15 minutes"],
  [3600, "1 hour"],
  [4 * 3600, "4 hours"],
  [24 * 3600, "1 day"],
];

// One labelled field: the label names the type, the help gives description and default,
// and an empty error paragraph waits for the server's message. A `scope` ("config") keeps a
// config key apart from the form's own fields: a key may well be called "name" or "ttl".
export function field(name, label, control, help, scope = null) {
  const id = `${scope || "field"}-${encodeURIComponent(name)}`;
  control.id = id;
  control.name = scope ? `${scope}.${name}` : name;
  control.setAttribute("aria-describedby", `${id}-help ${id}-error`);
  const isCheck = control.type === "checkbox";
  return h("div", { class: "field", "data-field": control.name },
    isCheck ? h("div", { class: "check" }, control, label(id)) : [label(id), control],
    h("p", { class: "help", id: `${id}-help`, text: help }),
    h("p", { class: "error", id: `${id}-error` }));
}

// /programs/{program} names an array's element type as a plain string ("integer").
function itemType(key) {
  return key.items || "string";
}

function typeText(key) {
  if (key.type === "array") {
    return `array of ${itemType(key)}, comma-separated`;
  }
  return key.type;
}

function defaultText(key) {
  if (key.default === null || key.default === undefined) {
    return key.required ? "Required." : "No default.";
  }
  if (key.secret) {
    return "Has a default, not shown: leave empty to keep it.";
  }
  return `Default: ${asText(key.default)}.`;
}

function asText(value) {
  if (value === null || value === undefined) {
    return "";
  }
  return Array.isArray(value) ? value.map(describe).join(", ") : describe(value);
}

// Fields for every config key. `current` (an update) prefills from the stack's config. A
// secret is never shown (a password field left empty: its default, or on an update "keep it").
export function configFields(config, current = null) {
  return Object.entries(config).map(([name, key]) => {
    const value = current ? current[name] : key.default;
    let control;
    if (key.type === "boolean" && !key.secret) {
      control = h("input", { type: "checkbox" });
      control.checked = value === true || value === "true";
    } else {
      control = h("input", {
        type: key.secret ? "password" : "text",
        autocomplete: key.secret ? "new-password" : "off",
        inputmode: key.type === "integer" ? "numeric" : key.type === "number" ? "decimal" : undefined,
        spellcheck: "false",
      });
      control.value = key.secret ? "" : asText(value);
      if (key.secret && current) {
        control.placeholder = "unchanged";
      }
    }
    control.dataset.configKey = name;
    control.dataset.type = key.type;
    if (key.secret) {
      control.dataset.secret = "true";
    }
    if (key.type === "array") {
      control.dataset.items = itemType(key);
    }
    if (key.default !== null && key.default !== undefined) {
      control.dataset.default = JSON.stringify(key.default);
    }
    control.dataset.initial = control.type === "checkbox" ? String(control.checked) : control.value;
    const label = (id) => h("label", { for: id },
      name, " ", h("span", { class: "type", text: `(${typeText(key)}${key.secret ? ", secret" : ""}${key.required ? ", required" : ""})` }));
    const help = [key.description, defaultText(key)].filter(Boolean).join(" ");
    return field(name, label, control, help, "config");
  });
}

function convert(text, type) {
  const trimmed = text.trim();
  if (type === "integer" && /^-?\d+$/.test(trimmed)) {
    return Number(trimmed);
  }
  if (type === "number" && trimmed !== "" && !Number.isNaN(Number(trimmed))) {
    return Number(trimmed);
  }
  if (type === "boolean" && /^(true|false)$/i.test(trimmed)) {
    return trimmed.toLowerCase() === "true";
  }
  // Anything else goes as typed: the server says what is wrong with it.
  return trimmed;
}

// What an empty text field sends, if anything. A secret left empty keeps its default (or, on
// an update, its value). Otherwise a create leaves the key to its default, while an update
// must send the cleared value: the API keeps a key it is not sent and refuses null.
function emptied(control, update) {
  const { type } = control.dataset;
  if (control.dataset.secret) {
    return undefined;
  }
  if (type === "array") {
    return [];
  }
  if (!update) {
    return undefined;
  }
  if (type === "string") {
    return "";
  }
  // A number cannot be empty: back to the default, or "" for the server to refuse.
  return control.dataset.default === undefined ? "" : JSON.parse(control.dataset.default);
}

// The config the form holds. `changedOnly` (an update): only what differs from the prefill.
export function readConfig(form, { changedOnly = false } = {}) {
  const config = {};
  for (const control of form.querySelectorAll("[data-config-key]")) {
    const name = control.dataset.configKey;
    const raw = control.type === "checkbox" ? String(control.checked) : control.value;
    if (changedOnly && raw === control.dataset.initial) {
      continue;
    }
    let value;
    if (control.type === "checkbox") {
      value = control.checked;
    } else if (raw.trim() === "") {
      value = emptied(control, changedOnly);
    } else if (control.dataset.type === "array") {
      value = raw.split(",").map((item) => item.trim()).filter(Boolean)
        .map((item) => convert(item, control.dataset.items));
    } else {
      value = convert(raw, control.dataset.type);
    }
    if (value !== undefined) {
      config[name] = value;
    }
  }
  return config;
}

export function clearErrors(form) {
  for (const error of form.querySelectorAll(".field .error")) {
    error.textContent = "";
  }
  for (const control of form.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
  }
}

// The control a 400's "parameter" names. When a config key shares its name with one of the
// form's own fields, the key is meant (the API checks the config first) unless only the own
// field holds the refused value.
function refusedControl(form, body) {
  const name = body?.parameter;
  if (!name) {
    return null;
  }
  const controls = [...form.elements];
  const own = controls.find((control) => control.name === name && !("configKey" in control.dataset));
  const key = controls.find((control) => control.dataset.configKey === name);
  if (own && key) {
    const holds = (control) => control.value.trim() === body.value;
    return holds(own) && !holds(key) ? own : key;
  }
  return own || key || null;
}

// Put an API error next to the field its "parameter" names; else in `fallback`. Returns the
// field's name when one was found.
export function showError(form, err, fallback) {
  const control = refusedControl(form, err.body);
  if (control) {
    const name = err.body.parameter;
    const message = err.body.description || err.message;
    document.getElementById(`${control.id}-error`).textContent = message;
    control.setAttribute("aria-invalid", "true");
    control.focus();
    fallback.textContent = `Check the ${name} field: ${message}`;
    return name;
  }
  fallback.textContent = err.message;
  return null;
}
