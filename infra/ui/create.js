// The create form: one field per config key of the program, a name and a TTL; on 202 the
// operation page follows the creation.
import { announce, api, h, param } from "./api.js";
import { TTL_CHOICES, clearErrors, configFields, field, readConfig, showError } from "./form.js";

const program = param("program") || "";

// The form's own controls, kept apart from the config fields (a key may be named "name" too).
const nameInput = h("input", { type: "text", autocomplete: "off", spellcheck: "false" });
const ttlSelect = h("select", {}, TTL_CHOICES.map(([seconds, text]) => h("option", { value: seconds, text })));
ttlSelect.value = "3600";

function nameField() {
  const label = (id) => h("label", { for: id }, "Stack name ", h("span", { class: "type", text: "(optional)" }));
  return field("name", label, nameInput, "Leave empty for a generated name.");
}

function ttlField() {
  const label = (id) => h("label", { for: id }, "Time to live ", h("span", { class: "type", text: "(then it is destroyed)" }));
  return field("ttl", label, ttlSelect, "The stack is destroyed by itself when this runs out.");
}

async function submit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  // A second submission would create a second stack (each one has its own key).
  if (form.getAttribute("aria-busy") === "true") {
    return;
  }
  const button = document.getElementById("submit");
  const formError = document.getElementById("form-error");
  clearErrors(form);
  formError.textContent = "";
  const body = { program, config: readConfig(form), ttl: Number(ttlSelect.value) };
  const name = nameInput.value.trim();
  if (name) {
    body.name = name;
  }
  button.disabled = true;
  form.setAttribute("aria-busy", "true");
  announce("Creating the stack…");
  try {
    // One key per submission: a retried request cannot create a second stack.
    const { data } = await api("POST", "/stacks", { body, headers: { "Idempotency-Key": crypto.randomUUID() } });
    announce(`Stack ${data.stack} is being created.`);
    location.assign(`operation.html?${new URLSearchParams({ id: data.operation.id })}`);
  } catch (err) {
    showError(form, err, formError);
    announce("The stack was not created.");
  } finally {
    button.disabled = false;
    form.removeAttribute("aria-busy");
  }
}

async function load() {
  const title = document.getElementById("title");
  if (!program) {
    title.textContent = "Create a stack";
    document.getElementById("description").textContent = "Choose a program on the Programs page first.";
    return;
  }
  document.title = `Create a ${program} stack · burner-api`;
  title.textContent = `Create a ${program} stack`;
  announce("Loading the program's settings…");
  try {
    const { data } = await api("GET", `/programs/${encodeURIComponent(program)}`);
    document.getElementById("description").textContent = data.description;
    const form = document.getElementById("create");
    document.getElementById("fields").replaceChildren(
      nameField(),
      h("fieldset", {}, h("legend", { text: "Configuration" }), configFields(data.config)),
      ttlField());
    form.hidden = false;
    form.addEventListener("submit", submit);
    announce(`${Object.keys(data.config).length} settings to fill in.`);
  } catch (err) {
    document.getElementById("description").textContent = err.message;
    announce("");
  }
}

load();
