// The admin API as the console calls it: the session cookie goes by itself (same origin),
// the CSRF token from the page's <meta> on every call. No key ever reaches this script.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message ?? `The admin API answered ${status}.`);
    this.status = status;
    this.code = error?.code ?? null;
    this.param = error?.param ?? null;
  }
}

export function call(method, path, body) {
  const init = { method, headers: { "x-csrf-token": csrf }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  return fetch(path, init);
}

export async function admin(method, path, body) {
  let response;
  try {
    response = await call(method, path, body);
  } catch {
    throw new ApiError(0, { message: "The gateway cannot be reached; is it running?" });
  }
  if (response.status === 401) {
    // The session is gone (expired, signed out elsewhere, the key revoked): sign in again.
    location.assign("/console/signin");
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) throw new ApiError(response.status, data?.error);
  return data;
}

// el("td", {class: "x"}, "text", child): DOM built from text, never from HTML strings.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function replace(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

export function emptyRow(columns, text) {
  return el("tr", {}, el("td", { colspan: columns, class: "empty" }, text));
}

export function notice(text, kind = "") {
  const box = document.getElementById("notice");
  if (box) replace(box, text ? el("p", { class: kind }, text) : null);
}

const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
export const fmt = {
  n: (v) => (v === null || v === undefined ? "–" : number.format(v)),
  usd: (v) => (v === null || v === undefined ? "–" : `$${Number(v).toFixed(v < 1 ? 4 : 2)}`),
  ms: (v) => (v === null || v === undefined || Number.isNaN(v) ? "–" : v < 1000 ? `${number.format(v)} ms` : `${number.format(v / 1000)} s`),
  bytes: (v) => {
    if (v === null || v === undefined) return "–";
    const units = ["B", "KB", "MB", "GB"];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return `${number.format(v)} ${units[i]}`;
  },
  time: (iso) => (iso ? new Date(iso).toLocaleString() : "–"),
};

// Field errors of the admin API beside their field: `param` names it (data-param).
export function showFieldError(form, error, fallback) {
  clearFieldErrors(form);
  const field = error.param ? findField(form, error.param) : null;
  if (field) {
    field.setAttribute("aria-invalid", "true");
    const id = `${field.id || "field"}-error`;
    const message = el("p", { class: "field-error", id }, error.message);
    field.insertAdjacentElement("afterend", message);
    field.dataset.hint ??= field.getAttribute("aria-describedby") ?? "";
    field.setAttribute("aria-describedby", `${field.dataset.hint} ${id}`.trim());
    field.focus();
  } else {
    replace(fallback, error.param ? `${error.param}: ${error.message}` : error.message);
    fallback.focus?.();
  }
}

function findField(form, param) {
  // The exact path, else its nearest parent: "budget.usd", "providers[0].provider"...
  let path = param;
  while (path) {
    const field = form.querySelector(`[data-param="${CSS.escape(path)}"]`);
    if (field) return field;
    const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
    path = cut > 0 ? path.slice(0, cut) : "";
  }
  return null;
}

export function clearFieldErrors(form) {
  for (const message of form.querySelectorAll(".field-error")) message.remove();
  for (const field of form.querySelectorAll('[aria-invalid="true"]')) {
    field.removeAttribute("aria-invalid");
    if (field.dataset.hint) field.setAttribute("aria-describedby", field.dataset.hint);
    else field.removeAttribute("aria-describedby");
  }
  for (const box of form.querySelectorAll(".form-error")) box.replaceChildren();
}
