// The burner values: one form per value route, its parameters read from the OpenAPI document.
import { announce, api, h } from "./api.js";
import { clearErrors, field, showError } from "./form.js";

const KINDS = ["id", "uuid", "string", "time"];

function parameterField(kind, parameter) {
  const schema = parameter.schema || {};
  const input = h("input", {
    type: "text",
    autocomplete: "off",
    spellcheck: "false",
    inputmode: schema.type === "integer" ? "numeric" : undefined,
  });
  input.value = schema.default ?? "";
  let list = null;
  if (Array.isArray(schema.enum)) {
    list = h("datalist", { id: `${kind}-${parameter.name}-choices` },
      schema.enum.map((choice) => h("option", { value: choice })));
    input.setAttribute("list", list.id);
  }
  const label = (id) => h("label", { for: id }, parameter.name, " ",
    h("span", { class: "type", text: `(${schema.type})` }));
  const help = `${parameter.description}${schema.default !== undefined ? `; default ${schema.default}` : ""}.`;
  const wrapper = field(parameter.name, label, input, help);
  if (list) {
    wrapper.append(list);
  }
  return wrapper;
}

async function burn(event, kind) {
  event.preventDefault();
  const form = event.currentTarget;
  const output = form.querySelector(".result");
  const button = form.querySelector("button");
  const error = form.querySelector(".form-error");
  clearErrors(form);
  error.textContent = "";
  const query = new URLSearchParams();
  // An empty parameter is left out, so the server uses its default ("tz=" it would refuse).
  for (const input of form.querySelectorAll("input")) {
    const value = input.value.trim();
    if (value !== "") {
      query.set(input.name, value);
    }
  }
  button.disabled = true;
  form.setAttribute("aria-busy", "true");
  output.replaceChildren(h("span", { class: "muted", text: "Burning a stack…" }));
  try {
    const suffix = query.size ? `?${query}` : "";
    const { data } = await api("GET", `/${kind}${suffix}`);
    output.replaceChildren(
      h("span", { class: "value", "data-value": kind, text: data.response }),
      h("span", { class: "help", text: ` from stack ${data.stack} in ${Math.round(data.duration_ms)} ms` }));
    announce(`New ${kind}: ${data.response}`);
  } catch (err) {
    output.replaceChildren();
    showError(form, err, error);
    announce(`No ${kind}: ${err.message}`);
  } finally {
    button.disabled = false;
    form.removeAttribute("aria-busy");
  }
}

async function load() {
  try {
    const { data } = await api("GET", "/openapi.json");
    const forms = KINDS.map((kind) => {
      const operation = data.paths[`/${kind}`].get;
      const form = h("form", { class: "card", novalidate: true, "aria-labelledby": `${kind}-title` },
        h("h2", { id: `${kind}-title`, text: kind }),
        h("p", { class: "muted", text: operation.summary }),
        (operation.parameters || []).map((parameter) => parameterField(kind, parameter)),
        h("div", { class: "actions" }, h("button", { type: "submit", text: `Get ${kind === "id" ? "an" : "a"} ${kind}` })),
        h("p", { class: "error form-error", role: "alert" }),
        h("div", { class: "result" }));
      form.addEventListener("submit", (event) => burn(event, kind));
      return form;
    });
    document.getElementById("values").replaceChildren(...forms);
  } catch (err) {
    document.getElementById("error").textContent = err.message;
  }
}

load();
