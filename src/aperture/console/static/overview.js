// Overview: the gateway's metrics, read every two seconds; rates over the readings kept.
import { admin, el, emptyRow, fmt, notice, replace } from "./api.js";

const EVERY_MS = 2000;
const KEEP = 150; // five minutes of readings
const WINDOW_S = 300;
// Kept for the browser tab's session, so coming back to the page keeps the window.
const STORE = "aperture.overview";
const history = (() => {
  try { return JSON.parse(sessionStorage.getItem(STORE)) ?? []; } catch { return []; }
})();

const sum = (values) => Object.values(values ?? {}).reduce((a, b) => a + b, 0);
const byId = (id) => document.getElementById(id);

function delta(now, then, pick) {
  return pick(now) - (then ? pick(then) : 0);
}

// The q-quantile of a histogram's bucket deltas, as the upper bound of its bucket (seconds).
function quantile(now, then, q) {
  const bounds = Object.keys(now.buckets).sort((a, b) => Number(a) - Number(b));
  const total = now.count - (then?.count ?? 0);
  if (total <= 0) return null;
  for (const le of bounds) {
    const seen = now.buckets[le] - (then?.buckets[le] ?? 0);
    if (seen >= q * total) return le === "+Inf" ? null : Number(le);
  }
  return null;
}

function mean(now, then) {
  const count = now.count - (then?.count ?? 0);
  return count > 0 ? (now.sum - (then?.sum ?? 0)) / count : null;
}

function render() {
  const now = history[history.length - 1];
  const first = history.length > 1 ? history[0] : null;
  const previous = history.length > 1 ? history[history.length - 2] : null;
  const totalRequests = sum(now.requests);
  byId("requests-total").textContent = fmt.n(totalRequests);
  const seconds = previous ? now.time - previous.time : 0;
  byId("rps").textContent = seconds > 0 ? fmt.n((totalRequests - sum(previous.requests)) / seconds) : "–";

  // The window is the readings kept; with no request in it yet, totals since start.
  let base = first;
  if (delta(now, first, (s) => sum(s.requests)) === 0) base = null;
  byId("window").textContent = base ? "in the last minutes" : "since the gateway started";
  const windowRequests = delta(now, base, (s) => sum(s.requests));
  const failed = delta(now, base, (s) =>
    Object.entries(s.requests).filter(([status]) => Number(status) >= 400).reduce((a, [, v]) => a + v, 0));
  byId("error-rate").textContent = windowRequests > 0 ? `${fmt.n((100 * failed) / windowRequests)}%` : "–";
  const codes = Object.keys(now.errors)
    .map((code) => [code, now.errors[code] - (base?.errors[code] ?? 0)])
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1]);
  replace(byId("errors"), codes.length
    ? codes.map(([code, n]) => el("tr", {}, el("td", {}, el("code", {}, code)), el("td", {}, fmt.n(n))))
    : el("tr", {}, el("td", { class: "empty" }, "No errors in the window.")));

  const ms = (s) => (s === null ? null : s * 1000);
  byId("latency").textContent = fmt.ms(ms(mean(now.latency, base?.latency)));
  byId("latency-p95").textContent = fmt.ms(ms(quantile(now.latency, base?.latency, 0.95)));
  byId("overhead").textContent = fmt.ms(ms(mean(now.overhead, base?.overhead)));
  byId("overhead-p95").textContent = fmt.ms(ms(quantile(now.overhead, base?.overhead, 0.95)));

  const tokens = now.tokens;
  byId("tokens").textContent = fmt.n(tokens.prompt + tokens.completion);
  byId("tokens-prompt").textContent = fmt.n(tokens.prompt);
  byId("tokens-completion").textContent = fmt.n(tokens.completion);
  byId("tokens-image").textContent = fmt.n(tokens.image_estimate);
  byId("spend-hour").textContent = fmt.usd(now.spend.last_hour_usd);
  byId("spend-day").textContent = fmt.usd(now.spend.today_usd);
  byId("images").textContent = fmt.n(now.images.count);
  byId("image-bytes").textContent = fmt.bytes(now.images.bytes);
  byId("image-saved").textContent = fmt.bytes(now.images.bytes_saved);

  const targets = new Set([...Object.keys(now.breakers), ...Object.keys(now.attempts)]);
  replace(byId("breakers"), targets.size
    ? [...targets].sort().map((target) => {
      const state = now.breakers[target] ?? "closed";
      const outcomes = now.attempts[target] ?? {};
      const all = sum(outcomes);
      return el("tr", {},
        el("td", {}, el("code", {}, target)),
        el("td", { class: state === "closed" ? "ok" : "bad" }, state.replace("_", " ")),
        el("td", {}, fmt.n(all)),
        el("td", {}, fmt.n(all - (outcomes.ok ?? 0))));
    })
    : emptyRow(4, "No target has been tried yet."));
  spark();
  byId("updated").textContent = `Updated ${new Date(now.time * 1000).toLocaleTimeString()}.`;
}

function spark() {
  const rates = [];
  for (let i = 1; i < history.length; i += 1) {
    const dt = history[i].time - history[i - 1].time;
    rates.push(dt > 0 ? (sum(history[i].requests) - sum(history[i - 1].requests)) / dt : 0);
  }
  const svg = byId("spark");
  if (rates.length < 2) { svg.replaceChildren(); return; }
  const top = Math.max(...rates, 0.1);
  const points = rates.map((r, i) => `${(i * 120) / (rates.length - 1)},${28 - (r / top) * 26}`).join(" ");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points);
  svg.replaceChildren(line);
}

async function poll() {
  try {
    const reading = await admin("GET", "/v1/admin/stats");
    // A restarted gateway counts from zero: readings from before it make no rates.
    if (history.length && sum(reading.requests) < sum(history[history.length - 1].requests)) history.length = 0;
    history.push(reading);
    while (history.length > KEEP || reading.time - history[0].time > WINDOW_S) history.shift();
    try { sessionStorage.setItem(STORE, JSON.stringify(history)); } catch { /* full: the window stays in memory */ }
    notice("");
    render();
  } catch (error) {
    notice(`Cannot read the gateway's metrics: ${error.message}`, "bad");
  }
  setTimeout(poll, EVERY_MS);
}

poll();
