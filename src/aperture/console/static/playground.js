// Playground: one request through the gateway's own pipeline (POST /v1/admin/playground/…,
// as the signed-in admin key), its answer streamed, and beside it what the gateway did.
import { admin, call, el, fmt, replace } from "./api.js";

const form = document.getElementById("compose");
const drop = document.getElementById("drop");
const input = document.getElementById("files");
const thumbs = document.getElementById("thumbs");
const answer = document.getElementById("answer");
const trace = document.getElementById("trace");
const errorBox = document.getElementById("compose-error");
const attached = []; // {name, mime, dataUri}

function attach(files) {
  for (const file of files) {
    if (!file.type.startsWith("image/") && file.type !== "application/pdf") {
      replace(errorBox, `${file.name} is neither an image nor a PDF.`);
      continue;
    }
    const reader = new FileReader();
    reader.onload = () => {
      attached.push({ name: file.name || "pasted image", mime: file.type, dataUri: reader.result });
      showThumbs();
    };
    reader.readAsDataURL(file);
  }
}

function showThumbs() {
  replace(thumbs, attached.map((file, i) => el("li", {},
    file.mime.startsWith("image/")
      ? el("img", { src: file.dataUri, alt: file.name })
      : el("span", { class: "pill" }, file.name),
    el("button", { type: "button", class: "danger", "aria-label": `Remove ${file.name}`,
      onclick: () => { attached.splice(i, 1); showThumbs(); } }, "×"))));
}

drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); attach(e.dataTransfer.files); });
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
input.addEventListener("change", () => { attach(input.files); input.value = ""; });
document.addEventListener("paste", (e) => {
  const files = [...(e.clipboardData?.items ?? [])].filter((i) => i.kind === "file").map((i) => i.getAsFile());
  if (files.length) attach(files);
});

const base64Of = (dataUri) => dataUri.slice(dataUri.indexOf(",") + 1);

function body(dialect, model, prompt, maxTokens, stream) {
  const images = attached.filter((f) => f.mime.startsWith("image/"));
  const pdfs = attached.filter((f) => f.mime === "application/pdf");
  if (dialect === "messages") {
    return { model, max_tokens: maxTokens, stream, messages: [{ role: "user", content: [
      ...images.map((f) => ({ type: "image", source: { type: "base64", media_type: f.mime, data: base64Of(f.dataUri) } })),
      ...pdfs.map((f) => ({ type: "document", source: { type: "base64", media_type: f.mime, data: base64Of(f.dataUri) } })),
      { type: "text", text: prompt }] }] };
  }
  if (dialect === "responses") {
    return { model, max_output_tokens: maxTokens, stream, input: [{ role: "user", content: [
      { type: "input_text", text: prompt },
      ...images.map((f) => ({ type: "input_image", image_url: f.dataUri })),
      ...pdfs.map((f) => ({ type: "input_file", filename: f.name, file_data: f.dataUri }))] }] };
  }
  if (dialect === "c1") {
    return { model, message: prompt, max_tokens: maxTokens, stream, images: images.map((f) => ({ url: f.dataUri })) };
  }
  const chat = { model, max_tokens: maxTokens, stream, messages: [{ role: "user", content: [
    { type: "text", text: prompt },
    ...images.map((f) => ({ type: "image_url", image_url: { url: f.dataUri } })),
    ...pdfs.map((f) => ({ type: "file", file: { filename: f.name, file_data: f.dataUri } }))] }] };
  if (stream) chat.stream_options = { include_usage: true };
  return chat;
}

// The answer's text in each dialect, whole or as one stream event.
function textOf(dialect, data) {
  if (dialect === "messages") return (data.content ?? []).filter((b) => b.type === "text").map((b) => b.text).join("");
  if (dialect === "responses") {
    return (data.output ?? []).flatMap((o) => o.content ?? []).filter((c) => c.type === "output_text").map((c) => c.text).join("");
  }
  return data.choices?.[0]?.message?.content ?? "";
}

function deltaOf(dialect, event) {
  if (event.error) throw new Error(event.error.message ?? "The stream ended with an error.");
  if (dialect === "messages") return event.type === "content_block_delta" ? event.delta?.text ?? "" : "";
  if (dialect === "responses") {
    if (event.type === "response.failed" || event.type === "error") throw new Error(event.response?.error?.message ?? event.message ?? "The response failed.");
    return event.type === "response.output_text.delta" ? event.delta : "";
  }
  return event.choices?.[0]?.delta?.content ?? "";
}

async function relay(response, dialect, out) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (!data || data === "[DONE]") continue;
      out.textContent += deltaOf(dialect, JSON.parse(data));
    }
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  replace(errorBox);
  const dialect = document.getElementById("dialect").value;
  const model = document.getElementById("model").value.trim();
  const prompt = document.getElementById("prompt").value;
  const stream = document.getElementById("stream").checked;
  const maxTokens = Number(document.getElementById("max-tokens").value) || 300;
  if (!model) { replace(errorBox, "Choose a model or a route's model name."); document.getElementById("model").focus(); return; }
  const send = document.getElementById("send");
  send.disabled = true;
  const out = el("p", { "data-testid": "answer-text" });
  replace(answer, out);
  replace(trace, el("h2", { id: "trace-h" }, "What the gateway did"), el("p", { class: "empty" }, "Waiting for the answer…"));
  let response;
  try {
    response = await call("POST", `/v1/admin/playground/${dialect}`, body(dialect, model, prompt, maxTokens, stream));
    const type = response.headers.get("content-type") ?? "";
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      const error = data.error ?? {};
      replace(answer, el("p", { class: "bad", role: "alert" }, `${response.status} ${error.code ?? ""}: ${error.message ?? "refused"}`,
        error.param ? el("small", {}, `at ${error.param}`) : null));
    } else if (type.startsWith("text/event-stream")) {
      await relay(response, dialect, out);
    } else {
      out.textContent = textOf(dialect, await response.json());
    }
  } catch (error) {
    answer.append(el("p", { class: "bad", role: "alert" }, error.message));
  } finally {
    send.disabled = false;
  }
  if (response) await explain(response, model);
});

async function audited(requestId) {
  // The audit is written in batches, just after the answer: ask again for a few seconds.
  for (let i = 0; i < 40; i += 1) {
    const found = (await admin("GET", `/v1/admin/audit?request_id=${encodeURIComponent(requestId)}`)).data;
    if (found.length) return found[0];
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return null;
}

function dl(pairs) {
  return el("dl", {}, pairs.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

async function explain(response, model) {
  const requestId = response.headers.get("x-request-id");
  if (!requestId) return;
  const [event, sent] = await Promise.all([
    audited(requestId),
    admin("GET", `/v1/admin/playground/${encodeURIComponent(requestId)}`).catch(() => ({ upstream: [] })),
  ]);
  let strategy = "–";
  if (event?.route) {
    strategy = await admin("GET", `/v1/admin/routes/${encodeURIComponent(event.route)}`).then((r) => r.strategy, () => "(a route of the config file)");
  }
  const usage = event?.usage ?? {};
  replace(trace,
    el("h2", { id: "trace-h" }, "What the gateway did"),
    el("h3", {}, "Routing decision"),
    dl([
      ["Request", el("a", { href: `/console/requests?id=${encodeURIComponent(requestId)}` }, requestId)],
      ["Asked for", model],
      ["Route", event?.route ?? "none (the model directly)"],
      ["Strategy", strategy],
      ["Served by", response.headers.get("x-aperture-provider")
        ? `${response.headers.get("x-aperture-provider")} / ${response.headers.get("x-aperture-model")}` : "no target"],
      ["Status", event ? `${event.status}${event.error_code ? ` (${event.error_code})` : ""}` : String(response.status)],
      ["Latency", fmt.ms(event?.latency_ms)],
    ]),
    el("h3", {}, "Attempts"),
    (event?.tried ?? []).length
      ? el("ol", { "data-testid": "attempts" }, event.tried.map((t) => el("li", {}, el("code", {}, t.target), " ",
        el("span", { class: t.outcome === "ok" ? "ok" : "bad" }, t.outcome), ` after ${fmt.ms(t.latency_ms)}`)))
      : el("p", { class: "empty" }, "No attempt: refused before any target."),
    el("h3", {}, "Images"),
    (event?.images ?? []).length
      ? el("ul", { "data-testid": "images" }, event.images.map((im) => el("li", {}, `${im.mime} ${im.width}×${im.height}, ${fmt.bytes(im.bytes)}`)))
      : el("p", { class: "empty" }, "No image."),
    el("p", { "data-testid": "changes" }, (event?.image_changes ?? []).length
      ? ["Changed: ", event.image_changes.map((c) => el("span", { class: "pill" }, c)), event.image_bytes_saved ? ` (${fmt.bytes(event.image_bytes_saved)} saved)` : ""]
      : "Nothing changed in the images."),
    el("h3", {}, "Tokens"),
    dl([
      ["Images, estimated", fmt.n(usage.image_tokens_estimate)],
      ["Images, reported", fmt.n(usage.image_tokens_reported)],
      ["Prompt, reported", fmt.n(usage.prompt_tokens)],
      ["Completion, reported", fmt.n(usage.completion_tokens)],
    ]),
    el("h3", {}, "Sent upstream (base64 elided, headers withheld)"),
    sent.upstream.length
      ? sent.upstream.map((u, i) => [
        el("p", {}, `Attempt ${i + 1}: `, el("code", {}, u.target), u.url ? ` ${u.method} ${u.url}` : ""),
        el("pre", { "data-testid": "upstream", tabindex: 0 }, u.error ?? JSON.stringify(u.body, null, 2))])
      : el("p", { class: "empty" }, "Nothing went upstream."),
  );
}

async function loadModels() {
  const list = document.getElementById("model-list");
  try {
    const [catalog, routes] = await Promise.all([admin("GET", "/v1/admin/models?view=catalog"), admin("GET", "/v1/admin/routes")]);
    const names = [...catalog.data.map((m) => m.id), ...routes.data.map((r) => r.model_pattern).filter((p) => !/[*?[]/.test(p))];
    replace(list, [...new Set(names)].map((n) => el("option", { value: n })));
    const modelInput = document.getElementById("model");
    if (!modelInput.value) modelInput.value = catalog.data.find((m) => m._meta.capabilities.vision)?.id ?? names[0] ?? "";
  } catch (error) {
    replace(errorBox, `Cannot read the catalog: ${error.message}`);
  }
}

loadModels();
