// Requests: the audit trail, filtered, and one request's detail. Never bytes or secrets:
// the audit holds none.
import { admin, el, emptyRow, fmt, notice, replace } from "./api.js";

const form = document.getElementById("filters");
const rows = document.getElementById("rows");
const detail = document.getElementById("detail");
let events = [];

function query() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (!value) continue;
    // datetime-local is the browser's local time: sent as UTC.
    params.set(name, name === "since" || name === "until" ? new Date(value).toISOString() : value.trim());
  }
  params.set("limit", "200");
  return params;
}

async function search() {
  replace(rows, emptyRow(5, "Loading…"));
  try {
    events = (await admin("GET", `/v1/admin/audit?${query()}`)).data;
    notice("");
  } catch (error) {
    replace(rows, emptyRow(5, `Cannot read the audit trail: ${error.message}`));
    return;
  }
  document.getElementById("count").textContent = `(${events.length}${events.length === 200 ? "+" : ""})`;
  if (!events.length) {
    replace(rows, emptyRow(5, "No request matches. Widen the filters, or send one from the playground."));
    return;
  }
  replace(rows, events.map((event, index) => {
    const open = () => show(index);
    return el("tr", {
      class: "selectable", tabindex: 0, "data-request-id": event.request_id, "aria-selected": "false",
      onclick: open, onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } },
    },
    el("td", {}, fmt.time(event.time)),
    el("td", {}, event.model ?? "–"),
    el("td", { class: event.status < 400 ? "ok" : "bad" }, `${event.status}${event.error_code ? ` ${event.error_code}` : ""}`),
    el("td", {}, fmt.ms(event.latency_ms)),
    el("td", {}, String(event.images.length)));
  }));
  const wanted = new URLSearchParams(location.search).get("id");
  const at = events.findIndex((e) => e.request_id === wanted);
  if (at >= 0) show(at, false);
}

function section(title, ...content) {
  return [el("h3", {}, title), ...content];
}

function table(headers, body, empty) {
  if (!body.length) return el("p", { class: "empty" }, empty);
  return el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, body.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c)))))));
}

async function strategyOf(route) {
  if (!route) return "–";
  try {
    return (await admin("GET", `/v1/admin/routes/${encodeURIComponent(route)}`)).strategy;
  } catch {
    return "(a route of the config file)";
  }
}

async function show(index, focus = true) {
  const event = events[index];
  for (const row of rows.children) row.setAttribute("aria-selected", String(row.dataset.requestId === event.request_id));
  const url = new URL(location.href);
  url.searchParams.set("id", event.request_id);
  history.replaceState(null, "", url);
  const usage = event.usage;
  replace(detail,
    el("h2", { id: "detail-h" }, "Detail"),
    dl([
      ["Request", el("code", { "data-testid": "detail-request-id" }, event.request_id)],
      ["Time", fmt.time(event.time)],
      ["Endpoint", event.endpoint],
      ["Key", event.key_id ?? "master key"],
      ["Tenant", event.tenant ?? "–"],
      ["Model", event.model ?? "–"],
      ["Route", event.route ?? "none (the model directly)"],
      ["Strategy", el("span", { id: "detail-strategy" }, event.route ? "…" : "–")],
      ["Served by", event.provider ? `${event.provider} / ${event.upstream_model}` : "–"],
      ["Status", `${event.status}${event.error_code ? ` (${event.error_code})` : ""}`],
      ["Latency", fmt.ms(event.latency_ms)],
    ]),
    section("Attempts", table(["#", "Target", "Outcome", "Provider latency"],
      (event.tried ?? []).map((t, i) => [String(i + 1), el("code", {}, t.target), el("span", { class: t.outcome === "ok" ? "ok" : "bad" }, t.outcome), fmt.ms(t.latency_ms)]),
      event.attempts ? `${event.attempts} attempt(s), not itemised.` : "No attempt: the request was refused before any target.")),
    section("Images", table(["#", "Type", "Size", "Bytes", "Frames", "Source", "sha256"],
      event.images.map((im, i) => [String(i + 1), im.mime, `${im.width}×${im.height}`, fmt.bytes(im.bytes), String(im.frames), im.source, el("code", { title: im.sha256 }, `${im.sha256.slice(0, 12)}…`)]),
      "No images.")),
    section("Changes", (event.image_changes ?? []).length
      ? el("p", { "data-testid": "detail-changes" }, event.image_changes.map((c) => el("span", { class: "pill" }, c)), event.image_bytes_saved ? ` ${fmt.bytes(event.image_bytes_saved)} saved` : "")
      : el("p", { class: "empty" }, "Nothing changed: the images went as sent.")),
    section("Tokens", dl([
      ["Prompt (reported)", fmt.n(usage.prompt_tokens)],
      ["Completion (reported)", fmt.n(usage.completion_tokens)],
      ["Images, estimated", fmt.n(usage.image_tokens_estimate)],
      ["Images, reported", fmt.n(usage.image_tokens_reported)],
    ])),
    section("Text (as stored, redacted)", event.text.length
      ? event.text.map((t) => el("pre", {}, t))
      : el("p", { class: "empty" }, "No text.")),
    section("Findings", table(["Check", "Name", "Action", "Field", "Count"],
      event.findings.map((f) => [f.check, f.name, f.action, f.param ? el("code", {}, f.param) : "–", String(f.count ?? 1)]),
      "No policy, PII or guardrail finding.")),
    event.generated_images.length ? section("Images made", table(["Type", "Bytes", "sha256"],
      event.generated_images.map((g) => [g.mime, fmt.bytes(g.bytes), el("code", {}, `${g.sha256.slice(0, 12)}…`)]), "")) : null,
  );
  if (focus) detail.focus();
  if (event.route) document.getElementById("detail-strategy").textContent = await strategyOf(event.route);
}

function dl(pairs) {
  return el("dl", {}, pairs.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

form.addEventListener("submit", (e) => { e.preventDefault(); search(); });
form.addEventListener("reset", () => setTimeout(search));
for (const [name, value] of new URLSearchParams(location.search)) {
  if (form.elements[name]) form.elements[name].value = value;
}
search();
