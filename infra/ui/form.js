// Form fields generated from a program's config schema, the reading of their values, and the
// server's 400 shown next to the field it names.
import { describe, h } from "./api.js";

export const TTL_CHOICES = [
  [900, "15 minutes"],
  [3600, "1 hour"],
  [4 * 3600, "4 hours"],
  [24 * 3600, "1 day"],
];

function fieldId(name) {
  return `field-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

// One labelled field: the label names the type, the help gives description and default,
// and an empty error paragraph waits for the server's message.
export function field(name, label, control, help) {
  const id = fieldId(name);
  control.id = id;
  control.name = name;
  control.setAttribute("aria-describedby", `${id}-help ${id}-error`);
  const isCheck = control.type === "checkbox";
  return h("div", { class: "field", "data-field": name },
    isCheck ? h("div", { class: "check" }, control, label(id)) : [label(id), control],
    h("p", { class: "help", id: `${id}-help`, text: help }),
    h("p", { class: "error", id: `${id}-error` }));
}

function typeText(key) {
  if (key.type === "array") {
    return `array of ${key.items?.type || "string"}, comma-separated`;
  }
  return key.type;
}

function defaultText(key) {
  if (key.default === null || key.default === undefined) {
    return key.required ? "Required." : "No default.";
  }
  return `Default: ${Array.isArray(key.default) ? key.default.join(", ") : describe(key.default)}.`;
}

function asText(value) {
  if (value === null || value === undefined) {
    return "";
  }
  return Array.isArray(value) ? value.join(", ") : describe(value);
}

// Fields for every config key. `current` (an update) prefills from the stack's config, and a
// secret is then left empty, meaning "keep it".
export function configFields(config, current = null) {
  return Object.entries(config).map(([name, key]) => {
    const value = current ? current[name] : key.default;
    let control;
    if (key.type === "boolean") {
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
    if (key.items?.type) {
      control.dataset.items = key.items.type;
    }
    control.dataset.initial = control.type === "checkbox" ? String(control.checked) : control.value;
    const label = (id) => h("label", { for: id },
      name, " ", h("span", { class: "type", text: `(${typeText(key)}${key.secret ? ", secret" : ""}${key.required ? ", required" : ""})` }));
    const help = [key.description, defaultText(key)].filter(Boolean).join(" ");
    return field(name, label, control, help);
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
  // Anything else goes as typed: the server says what is wrong with it.
  return trimmed;
}

// The config the form holds. `changedOnly`: only what differs from the prefilled values.
export function readConfig(form, { changedOnly = false } = {}) {
  const config = {};
  for (const control of form.querySelectorAll("[data-config-key]")) {
    const name = control.dataset.configKey;
    const raw = control.type === "checkbox" ? String(control.checked) : control.value;
    if (changedOnly && raw === control.dataset.initial) {
      continue;
    }
    if (control.type === "checkbox") {
      config[name] = control.checked;
    } else if (control.dataset.type === "array") {
      config[name] = raw.split(",").map((item) => item.trim()).filter(Boolean)
        .map((item) => convert(item, control.dataset.items));
    } else if (raw.trim() !== "") {
      config[name] = convert(raw, control.dataset.type);
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

// Put an API error next to the field its "parameter" names; else in `fallback`. Returns the
// field's name when one was found.
export function showError(form, err, fallback) {
  const name = err.body?.parameter;
  const control = name ? form.querySelector(`[name="${CSS.escape(name)}"]`) : null;
  if (control) {
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
