// Keys: issue (the secret shown once), revoke, and each key's limits and budget.
import { admin, clearFieldErrors, el, emptyRow, fmt, notice, replace, showFieldError } from "./api.js";

const form = document.getElementById("new-key");
const keysBody = document.getElementById("keys");
const tenantsBody = document.getElementById("tenants");
const secretBox = document.getElementById("secret");

function budgetText(line) {
  if (!line) return "–";
  const money = line.limit.usd !== null
    ? `${fmt.usd(line.spent.usd)} · ${fmt.usd(line.reserved.usd)} · ${fmt.usd(line.remaining.usd)} of ${fmt.usd(line.limit.usd)}`
    : null;
  const tokens = line.limit.tokens !== null
    ? `${fmt.n(line.spent.tokens)} · ${fmt.n(line.reserved.tokens)} · ${fmt.n(line.remaining.tokens)} of ${fmt.n(line.limit.tokens)} tokens`
    : null;
  return [money, tokens].filter(Boolean).join("; ") + ` (${line.period})`;
}

async function load() {
  let keys, budgets;
  try {
    [keys, budgets] = await Promise.all([admin("GET", "/v1/admin/keys"), admin("GET", "/v1/admin/budgets")]);
  } catch (error) {
    replace(keysBody, emptyRow(8, `Cannot read the keys: ${error.message}`));
    return;
  }
  const byKey = new Map(budgets.data.filter((l) => l.scope === "key").map((l) => [l.id, l]));
  replace(keysBody, keys.data.length ? keys.data.map((key) => {
    const revoked = key.revoked_at !== null;
    const expired = key.expires_at && new Date(key.expires_at) < new Date();
    return el("tr", { "data-key-id": key.id },
      el("td", {}, key.name, key.admin ? el("span", { class: "pill" }, "admin") : null),
      el("td", {}, el("code", {}, key.id)),
      el("td", {}, key.tenant ?? "–"),
      el("td", {}, key.models ? key.models.join(", ") : "all"),
      el("td", {}, `${key.rpm ?? "∞"} / ${key.tpm ?? "∞"}`),
      el("td", {}, budgetText(byKey.get(key.id))),
      el("td", { class: revoked || expired ? "bad" : "ok" }, revoked ? `revoked ${fmt.time(key.revoked_at)}`
        : expired ? "expired" : key.expires_at ? `active until ${fmt.time(key.expires_at)}` : "active"),
      el("td", {}, revoked ? null : el("button", {
        type: "button", class: "danger", "aria-label": `Revoke ${key.name}`, onclick: () => revoke(key),
      }, "Revoke")));
  }) : emptyRow(8, "No key yet: create one above."));
  const tenants = budgets.data.filter((l) => l.scope === "tenant");
  replace(tenantsBody, tenants.length ? tenants.map((l) => el("tr", {},
    el("td", {}, l.id), el("td", {}, l.period),
    el("td", {}, `${fmt.usd(l.spent.usd)}, ${fmt.n(l.spent.tokens)} tokens`),
    el("td", {}, `${fmt.usd(l.reserved.usd)}, ${fmt.n(l.reserved.tokens)} tokens`),
    el("td", {}, `${fmt.usd(l.remaining.usd)}${l.remaining.tokens !== null ? `, ${fmt.n(l.remaining.tokens)} tokens` : ""}`)))
    : emptyRow(5, "No tenant budget is configured (governance.tenants in the config)."));
}

async function revoke(key) {
  if (!confirm(`Revoke the key “${key.name}”? Requests with it are refused at once.`)) return;
  try {
    await admin("DELETE", `/v1/admin/keys/${encodeURIComponent(key.id)}`);
    notice(`Revoked “${key.name}”.`, "ok");
  } catch (error) {
    notice(`Could not revoke: ${error.message}`, "bad");
  }
  load();
}

const optional = (value) => (value.trim() === "" ? null : value.trim());
// Not a number: sent as typed, so the admin API's own message names the field.
const number = (value) => {
  if (value.trim() === "") return null;
  const n = Number(value);
  return Number.isNaN(n) ? value.trim() : n;
};

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearFieldErrors(form);
  const f = form.elements;
  const body = { name: f.name.value.trim(), admin: f.admin.checked };
  if (optional(f.tenant.value)) body.tenant = f.tenant.value.trim();
  const models = f.models.value.split(",").map((m) => m.trim()).filter(Boolean);
  if (models.length) body.models = models;
  if (number(f.rpm.value) !== null) body.rpm = number(f.rpm.value);
  if (number(f.tpm.value) !== null) body.tpm = number(f.tpm.value);
  if (number(f.usd.value) !== null || number(f.tokens.value) !== null) {
    body.budget = { usd: number(f.usd.value), tokens: number(f.tokens.value), period: f.period.value };
  }
  if (f.expires.value) body.expires_at = new Date(f.expires.value).toISOString();
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const issued = await admin("POST", "/v1/admin/keys", body);
    document.getElementById("secret-value").textContent = issued.key;
    secretBox.hidden = false;
    secretBox.focus();
    form.reset();
    load();
  } catch (error) {
    showFieldError(form, error, document.getElementById("new-key-error"));
  } finally {
    button.disabled = false;
  }
});

document.getElementById("copy-secret").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(document.getElementById("secret-value").textContent);
    notice("The secret is on the clipboard.", "ok");
  } catch {
    notice("Copying is not allowed here; select the secret and copy it.", "warn");
  }
});

load();
