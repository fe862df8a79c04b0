// The programs page: the catalog, each program with its description and config keys.
import { announce, api, h } from "./api.js";

async function load() {
  announce("Loading the programs…");
  try {
    const { data } = await api("GET", "/programs");
    const list = document.getElementById("programs");
    list.replaceChildren(...data.programs.map((program) => h("li", { class: "card" },
      h("h2", { text: program.name }),
      h("p", { text: program.description || "No description." }),
      program.config.length
        ? h("ul", { class: "keys", "aria-label": `Config keys of ${program.name}` },
          program.config.map((key) => h("li", { text: key })))
        : h("p", { class: "muted", text: "No config keys." }),
      h("a", {
        class: "button",
        href: `create.html?${new URLSearchParams({ program: program.name })}`,
        text: `Create a ${program.name} stack`,
      }))));
    announce(`${data.programs.length} programs`);
  } catch (err) {
    document.getElementById("error").textContent = err.message;
    announce("");
  }
}

load();
