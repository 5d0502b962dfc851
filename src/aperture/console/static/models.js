// Models and routes: the live catalog; stored routes and models, created and changed through
// the admin API, whose validation messages appear at the field they name.
import { admin, clearFieldErrors, el, emptyRow, fmt, notice, replace, showFieldError } from "./api.js";

const editor = document.getElementById("route-editor");
const routeForm = document.getElementById("route-form");
const targets = document.getElementById("targets");
const modelForm = document.getElementById("model-form");
let editing = null; // the id of the route being changed, null for a new one

async function loadCatalog() {
  const body = document.getElementById("catalog");
  let entries;
  try {
    entries = (await admin("GET", "/v1/admin/models?view=catalog")).data;
  } catch (error) {
    replace(body, emptyRow(6, `Cannot read the catalog: ${error.message}`));
    return;
  }
  replace(body, entries.length ? entries.map((m) => {
    const meta = m._meta;
    const can = Object.entries(meta.capabilities).filter(([, yes]) => yes).map(([c]) => el("span", { class: "pill" }, c));
    return el("tr", {},
      el("td", {}, el("code", {}, m.id), meta.aliases.length ? el("small", {}, `aliases: ${meta.aliases.join(", ")}`) : null),
      el("td", {}, `${meta.provider} (${meta.provider_kind})`),
      el("td", {}, can.length ? can : el("span", { class: "muted" }, "text only")),
      el("td", {}, fmt.n(meta.limits.max_images)),
      el("td", {}, `${fmt.bytes(meta.limits.max_image_bytes)}, ${fmt.n(meta.limits.max_image_pixels / 1e6)} MP`,
        meta.limits.min_max_tokens ? el("small", {}, `max_tokens ≥ ${meta.limits.min_max_tokens}`) : null),
      el("td", {}, meta.url_policy));
  }) : emptyRow(6, "The catalog is empty: add providers and models to the config."));
}

async function loadRoutes() {
  const body = document.getElementById("routes");
  let routes;
  try {
    routes = (await admin("GET", "/v1/admin/routes")).data;
  } catch (error) {
    replace(body, emptyRow(5, `Cannot read the routes: ${error.message}`));
    return;
  }
  replace(body, routes.length ? routes.map((route) => el("tr", { "data-route-id": route.id },
    el("td", {}, el("code", {}, route.id)),
    el("td", {}, el("code", {}, route.model_pattern)),
    el("td", {}, route.strategy ?? "priority"),
    el("td", {}, route.providers.map((t) => el("span", { class: "pill" }, `${t.provider}${t.model ? `/${t.model}` : ""} ×${t.weight ?? 1}`))),
    el("td", {},
      el("button", { type: "button", class: "secondary", "aria-label": `Edit route ${route.id}`, onclick: () => edit(route) }, "Edit"),
      " ",
      el("button", { type: "button", class: "danger", "aria-label": `Delete route ${route.id}`, onclick: () => remove(route) }, "Delete"))))
    : emptyRow(5, "No stored route: requests go to the model of the name they ask for."));
}

function targetRow(target, index) {
  const id = (name) => `t${index}-${name}`;
  return el("div", { class: "target-row", "data-param": `providers[${index}]` },
    el("div", {}, el("label", { for: id("provider") }, "Provider"),
      el("input", { id: id("provider"), name: "provider", value: target.provider ?? "", required: true, "data-param": `providers[${index}].provider` })),
    el("div", {}, el("label", { for: id("model") }, "Model at the provider"),
      el("input", { id: id("model"), name: "model", value: target.model ?? "", placeholder: "the name asked for", "data-param": `providers[${index}].model` })),
    el("div", {}, el("label", { for: id("weight") }, "Weight"),
      el("input", { id: id("weight"), name: "weight", value: target.weight ?? 1, inputmode: "decimal", "data-param": `providers[${index}].weight` })),
    el("button", { type: "button", class: "danger", "aria-label": `Remove target ${index + 1}`, onclick: (e) => { e.target.closest(".target-row").remove(); renumber(); } }, "Remove"));
}

function renumber() {
  const current = readTargets();
  replace(targets, current.map((t, i) => targetRow(t, i)));
}

function readTargets() {
  return [...targets.querySelectorAll(".target-row")].map((row) => {
    const value = (name) => row.querySelector(`[name=${name}]`).value.trim();
    const target = { provider: value("provider") };
    if (value("model")) target.model = value("model");
    const weight = Number(value("weight"));
    target.weight = value("weight") === "" ? 1 : Number.isNaN(weight) ? value("weight") : weight;
    return target;
  });
}

function edit(route) {
  editing = route?.id ?? null;
  clearFieldErrors(routeForm);
  routeForm.elements.id.value = route?.id ?? "";
  routeForm.elements.id.readOnly = editing !== null;
  routeForm.elements.model_pattern.value = route?.model_pattern ?? "";
  routeForm.elements.strategy.value = route?.strategy ?? "priority";
  replace(targets, (route?.providers ?? [{}]).map((t, i) => targetRow(t, i)));
  document.getElementById("editor-h").textContent = editing ? `Route ${editing}` : "New route";
  editor.hidden = false;
  (editing ? routeForm.elements.model_pattern : routeForm.elements.id).focus();
}

async function remove(route) {
  if (!confirm(`Delete the route “${route.id}”? Its model names go back to the catalog at once.`)) return;
  try {
    await admin("DELETE", `/v1/admin/routes/${encodeURIComponent(route.id)}`);
    notice(`Deleted the route “${route.id}”.`, "ok");
  } catch (error) {
    notice(`Could not delete: ${error.message}`, "bad");
  }
  loadRoutes();
}

routeForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearFieldErrors(routeForm);
  const f = routeForm.elements;
  const body = { id: f.id.value.trim(), model_pattern: f.model_pattern.value.trim(), strategy: f.strategy.value, providers: readTargets() };
  try {
    if (editing) await admin("PUT", `/v1/admin/routes/${encodeURIComponent(editing)}`, body);
    else await admin("POST", "/v1/admin/routes", body);
    notice(`Saved the route “${body.id}”; it applies now.`, "ok");
    editor.hidden = true;
    loadRoutes();
  } catch (error) {
    showFieldError(routeForm, error, document.getElementById("route-error"));
  }
});

document.getElementById("new-route").addEventListener("click", () => edit(null));
document.getElementById("cancel-route").addEventListener("click", () => { editor.hidden = true; });
document.getElementById("add-target").addEventListener("click", () => {
  targets.append(targetRow({}, targets.querySelectorAll(".target-row").length));
});

async function loadModels() {
  const list = document.getElementById("stored-models");
  let models;
  try {
    models = (await admin("GET", "/v1/admin/models")).data;
  } catch (error) {
    replace(list, el("li", { class: "empty" }, `Cannot read the stored models: ${error.message}`));
    return;
  }
  replace(list, models.length ? models.map((m) => el("li", {},
    el("button", { type: "button", class: "secondary", onclick: () => { modelForm.elements.model.value = JSON.stringify(m, null, 2); modelForm.elements.model.focus(); } }, `Edit ${m.name}`)))
    : el("li", { class: "empty" }, "No stored model: the catalog comes from the config file."));
}

modelForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = document.getElementById("model-error");
  clearFieldErrors(modelForm);
  const text = modelForm.elements.model.value;
  let name;
  try { name = JSON.parse(text).name; } catch { name = undefined; }
  try {
    const stored = (await admin("GET", "/v1/admin/models")).data.some((m) => m.name === name);
    if (stored) await admin("PUT", `/v1/admin/models/${encodeURIComponent(name)}`, text);
    else await admin("POST", "/v1/admin/models", text);
    notice(`Saved the model “${name}”; it is in the catalog now.`, "ok");
    loadModels();
    loadCatalog();
  } catch (error) {
    replace(box, error.param ? `${error.param}: ${error.message}` : error.message);
    modelForm.elements.model.setAttribute("aria-invalid", "true");
  }
});

loadCatalog();
loadRoutes();
loadModels();
