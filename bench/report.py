"""results.json -> results.md (table, method, machine) and chart.png.

Run on its own to re-render: ``bench/.venv-tools/bin/python bench/report.py bench/results/results.json``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import image_scenarios

NA = "n/a"
# Every contender measured in every scenario, and the gateways among them.
CONTENDERS = ("direct", "aperture", "portkey", "litellm")
GATEWAYS = ("aperture", "portkey", "litellm")
NAMES = {"direct": "direct", "aperture": "Aperture", "portkey": "Portkey", "litellm": "LiteLLM"}


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


class Row:
    """One table row: a metric for each contender, and how to compare it."""

    def __init__(self, scenario: str, metric: str, values: dict[str, Any], *,
                 better: str, unit: str, ratio_direct: bool = True, digits: int = 1,
                 notes: dict[str, str] | None = None) -> None:
        self.scenario = scenario
        self.metric = metric
        self.values = values
        self.better = better  # "higher" | "lower"
        self.unit = unit
        self.ratio_direct = ratio_direct
        self.digits = digits
        self.notes = notes or {}

    def cell(self, contender: str) -> str:
        value = self.values.get(contender)
        if isinstance(value, int | float):
            return f"{value:,.{self.digits}f}"
        if contender in self.notes:
            return self.notes[contender]
        return value if isinstance(value, str) else NA

    def ratio(self, a: str, b: str) -> str:
        x, y = self.values.get(a), self.values.get(b)
        if not isinstance(x, int | float) or not isinstance(y, int | float) or x <= 0 or y <= 0:
            return "—"
        r = x / y
        return f"{r:.2f}×" if 0.1 <= r < 100 else f"{r:.3g}×"


def _lat(scen: dict[str, Any], contender: str, key: str, *path: str) -> Any:
    entry = scen.get(contender)
    if not isinstance(entry, dict):
        return None
    if "na" in entry:
        return entry["na"]
    return _get(entry, key, *path)


def build_rows(results: dict[str, Any]) -> list[Row]:
    s = results.get("scenarios", {})
    rows: list[Row] = []
    cs = CONTENDERS

    a = s.get("a_throughput", {})
    rows.append(Row("(a) throughput, small text, c=64", "requests/s",
                    {c: _lat(a, c, "rps") for c in cs}, better="higher", unit="req/s", digits=0))
    rows.append(Row("(a) throughput, small text, c=64", "latency p50",
                    {c: _lat(a, c, "latency_ms", "p50") for c in cs}, better="lower", unit="ms",
                    digits=2))
    rows.append(Row("(a) throughput, small text, c=64", "latency p99",
                    {c: _lat(a, c, "latency_ms", "p99") for c in cs}, better="lower", unit="ms",
                    digits=2))
    rows.append(Row("(a) throughput, small text, c=64", "gateway CPU per request",
                    {"direct": None, **{c: _lat(a, c, "cpu_ms_per_request") for c in GATEWAYS}},
                    better="lower", unit="ms", ratio_direct=False, digits=3,
                    notes={"direct": "—"}))
    rows.append(Row("(a) throughput, small text, c=64", "errors (non-2xx, socket)",
                    {c: _lat(a, c, "error_count") for c in cs}, better="lower", unit="",
                    digits=0, ratio_direct=False))
    ad = s.get("a_throughput_default_logs", {})
    if ad:
        rows.append(Row("(a′) same, each gateway at its default log level", "requests/s",
                        {"direct": _lat(a, "direct", "rps"),
                         **{c: _lat(ad, c, "rps") for c in GATEWAYS}},
                        better="higher", unit="req/s", digits=0))

    b = s.get("b_paced_50ms", {})
    direct_b = b.get("direct", {})
    for pct in ("p50", "p99"):
        base = _get(direct_b, "latency_ms", pct)
        added: dict[str, Any] = {}
        for c in cs:
            v = _lat(b, c, "latency_ms", pct)
            added[c] = (v - base) if isinstance(v, int | float) and isinstance(base, int | float) \
                else v
        rows.append(Row("(b) 100 req/s fixed rate, upstream +50 ms", f"added latency {pct}",
                        added, better="lower", unit="ms", ratio_direct=False, digits=2))
    for pct in ("p50", "p99"):
        rows.append(Row("(b) 100 req/s fixed rate, upstream +50 ms", f"total latency {pct}",
                        {c: _lat(b, c, "latency_ms", pct) for c in cs}, better="lower",
                        unit="ms", digits=2))
    rows.append(Row("(b) 100 req/s fixed rate, upstream +50 ms", "achieved rate",
                    {c: _lat(b, c, "rps") for c in cs}, better="higher", unit="req/s", digits=1))

    for key, label in (("c_stream_instant", "(c1) 100 concurrent streams, instant upstream"),
                       ("c_stream_paced", "(c2) 100 concurrent streams, paced upstream "
                                          "(50 ms + 10×10 ms)")):
        c_ = s.get(key, {})
        for metric, path in (("TTFB p50", ("ttfb_ms", "p50")), ("TTFB p99", ("ttfb_ms", "p99")),
                             ("total p50", ("total_ms", "p50")),
                             ("total p99", ("total_ms", "p99"))):
            rows.append(Row(label, metric, {c: _lat(c_, c, *path) for c in cs}, better="lower",
                            unit="ms", digits=1))
        rows.append(Row(label, "gateway CPU per stream",
                        {"direct": None, **{c: _lat(c_, c, "cpu_ms_per_stream") for c in GATEWAYS}},
                        better="lower", unit="ms", ratio_direct=False, digits=3,
                        notes={"direct": "—"}))
    chunks = s.get("c_stream_chunks", {})
    label = "(c) per chunk: c2's 12 upstream writes against c1's one, same events"
    rows.append(Row(label, "added latency of a chunk (one paced stream at a time)",
                    {"direct": None, **{c: _lat(chunks, c, "added_ms_per_chunk") for c in GATEWAYS}},
                    better="lower", unit="ms", ratio_direct=False, digits=3,
                    notes={"direct": "—"}))
    rows.append(Row(label, "gateway CPU per chunk",
                    {"direct": None, **{c: _lat(chunks, c, "cpu_ms_per_chunk") for c in GATEWAYS}},
                    better="lower", unit="ms", ratio_direct=False, digits=4,
                    notes={"direct": "—"}))

    d = s.get("d_vision_openai", {})
    label = "(d) vision, 4 MB JPEG data URI → OpenAI-compatible, sequential"
    rows.append(Row(label, "latency p50", {c: _lat(d, c, "latency_ms", "p50") for c in cs},
                    better="lower", unit="ms", digits=1))
    rows.append(Row(label, "latency p99", {c: _lat(d, c, "latency_ms", "p99") for c in cs},
                    better="lower", unit="ms", digits=1))
    rows.append(Row(label, "gateway peak RSS during it", {
        "direct": None, **{c: _lat(d, c, "peak_rss_mb") for c in GATEWAYS}},
        better="lower", unit="MB", ratio_direct=False, digits=0, notes={"direct": "—"}))
    da = s.get("d_vision_anthropic", {})
    label = "(d′) vision, same image → Anthropic Messages upstream"
    rows.append(Row(label, "latency p50", {c: _lat(da, c, "latency_ms", "p50") for c in cs},
                    better="lower", unit="ms", digits=1,
                    notes={"direct": "n/a"}))
    rows.append(Row(label, "gateway peak RSS during it", {
        "direct": None, **{c: _lat(da, c, "peak_rss_mb") for c in GATEWAYS}},
        better="lower", unit="MB", ratio_direct=False, digits=0, notes={"direct": "—"}))

    e = s.get("e_cold_start", {})
    rows.append(Row("(e) cold start: spawn → health 200", "median of runs", {
        "direct": None, **{c: _lat(e, c, "median_ms") for c in GATEWAYS}},
        better="lower", unit="ms", ratio_direct=False, digits=0, notes={"direct": "—"}))

    f = s.get("f_memory", {})
    for metric, key in (("RSS at ready (no request yet)", "ready_rss_mb"),
                        ("idle RSS (after warm-up)", "idle_rss_mb"),
                        ("loaded RSS (max during (a))", "loaded_rss_mb"),
                        ("session peak RSS", "session_peak_rss_mb")):
        rows.append(Row("(f) memory of the gateway process", metric, {
            "direct": None, **{c: _lat(f, c, key) for c in GATEWAYS}},
            better="lower", unit="MB", ratio_direct=False, digits=0, notes={"direct": "—"}))
    return rows


def table(rows: list[Row]) -> str:
    out = ["| scenario | metric | unit | better | direct | Aperture | Portkey | LiteLLM | "
           "Aperture/Portkey | Aperture/LiteLLM | Aperture/direct |",
           "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    last = None
    for r in rows:
        scen = r.scenario if r.scenario != last else "″"
        last = r.scenario
        out.append(
            f"| {scen} | {r.metric} | {r.unit} | {r.better} | {r.cell('direct')} | "
            f"{r.cell('aperture')} | {r.cell('portkey')} | {r.cell('litellm')} | "
            f"{r.ratio('aperture', 'portkey')} | {r.ratio('aperture', 'litellm')} | "
            f"{r.ratio('aperture', 'direct') if r.ratio_direct else '—'} |")
    return "\n".join(out)


def _floors(results: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(name, req/s, CPU ms per request) of each bare pass-through floor measured."""
    a = results.get("scenarios", {}).get("a_throughput", {})
    return [(name, _lat(a, name, "rps"), _lat(a, name, "cpu_ms_per_request"))
            for name in a if name.startswith("floor-")]


def floors_table(results: dict[str, Any]) -> str:
    """Scenario (a) against the bare pass-through proxies: each stack's own ceiling."""
    a = results.get("scenarios", {}).get("a_throughput", {})
    ours, ours_cpu = _lat(a, "aperture", "rps"), _lat(a, "aperture", "cpu_ms_per_request")
    floors = _floors(results)
    if not floors:
        return "Not run (`--no-floors`, or no `bench/.venv-floors`).\n"
    out = ["| bare proxy (server + client) | req/s | CPU per request (ms) | Aperture/floor req/s "
           "| Aperture − floor CPU (ms) |", "|---|---:|---:|---:|---:|"]

    def fmt(v: Any, digits: int) -> str:
        return f"{v:,.{digits}f}" if isinstance(v, int | float) else str(v or NA)

    for name, rps, cpu in floors:
        ratio = f"{ours / rps:.2f}×" if isinstance(ours, int | float) and isinstance(
            rps, int | float) and rps > 0 else "—"
        extra = f"{ours_cpu - cpu:.3f}" if isinstance(ours_cpu, int | float) and isinstance(
            cpu, int | float) else "—"
        label = name.removeprefix("floor-").replace("-", " + ")
        mark = " (Aperture's stack)" if label == "uvicorn + aiohttp" else ""
        out.append(f"| {label}{mark} | {fmt(rps, 0)} | {fmt(cpu, 3)} | {ratio} | {extra} |")
    out.append(f"| **Aperture** (uvicorn + aiohttp, the whole gateway) | {fmt(ours, 0)} | "
               f"{fmt(ours_cpu, 3)} | 1.00× of itself | — |")
    return "\n".join(out) + "\n"


def readme_table(results: dict[str, Any]) -> str:
    """The summary for the README: one row per scenario, one column per contender."""
    s = results.get("scenarios", {})

    def v(scen: str, c: str, *path: str, digits: int = 1) -> str:
        x = _lat(s.get(scen, {}), c, *path)
        if isinstance(x, int | float):
            return f"{x:,.{digits}f}"
        return "n/a" if x is None else "n/a"

    def added(c: str, pct: str) -> str:
        b = s.get("b_paced_50ms", {})
        x, base = _lat(b, c, "latency_ms", pct), _get(b.get("direct", {}), "latency_ms", pct)
        if isinstance(x, int | float) and isinstance(base, int | float):
            return f"{x - base:.2f}"
        return "n/a"

    def ttfb_added(c: str) -> str:
        t = s.get("c_stream_instant", {})
        x, base = _lat(t, c, "ttfb_ms", "p50"), _get(t.get("direct", {}), "ttfb_ms", "p50")
        if isinstance(x, int | float) and isinstance(base, int | float):
            return f"{x - base:.1f}"
        return "n/a"

    def vis(c: str, scen: str) -> str:
        d = s.get(scen, {})
        x, base = _lat(d, c, "latency_ms", "p50"), _get(d.get("direct", {}), "latency_ms", "p50")
        if isinstance(x, int | float) and isinstance(base, int | float):
            return f"{x - base:.1f}"
        return "n/a"

    def seconds(c: str) -> str:
        ms = _lat(s.get("e_cold_start", {}), c, "median_ms")
        return f"{ms / 1000:.2f}" if isinstance(ms, int | float) else "n/a"

    floor = _lat(s.get("a_throughput", {}), "floor-uvicorn-aiohttp", "rps")
    lines = ["| scenario | Aperture | Portkey | LiteLLM | direct |", "|---|---:|---:|---:|---:|",
             "| (a) small text, c=64, req/s per process | "
             + " | ".join(v("a_throughput", c, "rps", digits=0) for c in GATEWAYS)
             + f" | {v('a_throughput', 'direct', 'rps', digits=0)} |",
             "| (a) CPU per request, ms | "
             + " | ".join(v("a_throughput", c, "cpu_ms_per_request", digits=3) for c in GATEWAYS)
             + " | — |",
             "| (b) added latency p50 / p99 at 100 req/s, 50 ms upstream, ms | "
             + " | ".join(f"{added(c, 'p50')} / {added(c, 'p99')}" for c in GATEWAYS) + " | — |",
             "| (c) 100 streams, TTFB added p50, ms | "
             + " | ".join(ttfb_added(c) for c in GATEWAYS)
             + f" | {v('c_stream_instant', 'direct', 'ttfb_ms', 'p50')} |",
             "| (c) per chunk: added latency / gateway CPU, ms | "
             + " | ".join(f"{v('c_stream_chunks', c, 'added_ms_per_chunk', digits=3)} / "
                          f"{v('c_stream_chunks', c, 'cpu_ms_per_chunk', digits=3)}"
                          for c in GATEWAYS) + " | — |",
             "| (d) 4 MB image data URI, added p50, ms | "
             + " | ".join(vis(c, "d_vision_openai") for c in GATEWAYS)
             + f" | {v('d_vision_openai', 'direct', 'latency_ms', 'p50')} |",
             "| (d′) same image translated to Anthropic, added p50, ms | "
             + " | ".join(vis(c, "d_vision_anthropic") for c in GATEWAYS) + " | — |",
             "| (e) cold start to first 200, s | "
             + " | ".join(seconds(c) for c in GATEWAYS) + " | — |",
             "| (f) RSS idle / after (a), MB | "
             + " | ".join(f"{v('f_memory', c, 'idle_rss_mb', digits=0)} / "
                          f"{v('f_memory', c, 'loaded_rss_mb', digits=0)}" for c in GATEWAYS)
             + " | — |"]
    ours = _lat(s.get("a_throughput", {}), "aperture", "rps")
    pk = _lat(s.get("a_throughput", {}), "portkey", "rps")
    ratios = []
    if isinstance(ours, int | float) and isinstance(pk, int | float) and pk > 0:
        ratios.append(f"(a) Aperture/Portkey {ours / pk:.2f}× (target ≥ 2×)")
    if isinstance(ours, int | float) and isinstance(floor, int | float) and floor > 0:
        ratios.append(f"Aperture/bare uvicorn + aiohttp proxy {ours / floor:.2f}× (target ≥ 0.8×)")
    return "\n".join(lines) + ("\n\n" + "; ".join(ratios) + "." if ratios else "") + "\n"


def _profile_md(profile: dict[str, Any] | None) -> str:
    if not profile:
        return "Not run.\n"
    if "error" in profile:
        return f"py-spy failed: `{profile['error']}`\n"
    lines = [
        f"py-spy 0.4 `record --gil --function`, 200 Hz, {profile.get('samples')} samples of "
        "the Aperture process while wrk ran scenario (a) against it "
        f"({profile.get('rps_while_profiling')} req/s while sampled, py-spy included). "
        "`--gil` keeps only the thread holding the GIL: shares are of the time Python code runs "
        "(waiting threads, epoll and C code that releases the GIL are not counted). "
        f"Flame graph of every non-idle thread: `{profile.get('svg')}`; collapsed stacks: "
        f"`{profile.get('raw')}`.",
        "",
        "Top functions by **self** time (the frame on top of the stack):",
        "",
        "| # | function (file) | share of samples |",
        "|---:|---|---:|",
    ]
    for i, row in enumerate(profile.get("self", [])[:10], 1):
        lines.append(f"| {i} | `{row['frame']}` | {row['share_pct']}% |")
    lines += ["", "Aperture's own functions by **inclusive** time (anywhere on the stack; the "
              "CLI and server entry frames, 100% by construction, left out):", "",
              "| # | function (file) | share of samples |", "|---:|---|---:|"]
    own = [r for r in profile.get("aperture_inclusive", [])
           if r["share_pct"] < 99.5]
    for i, row in enumerate(own[:12], 1):
        lines.append(f"| {i} | `{row['frame']}` | {row['share_pct']}% |")
    lines += ["", "Self time by package:", "", "| package | share |", "|---|---:|"]
    for row in profile.get("self_by_package", []):
        lines.append(f"| `{row['package']}` | {row['share_pct']}% |")
    return "\n".join(lines) + "\n"


def _rounds(results: dict[str, Any]) -> str:
    out = []
    for key in ("c_stream_instant", "c_stream_paced"):
        for c, v in results.get("scenarios", {}).get(key, {}).items():
            if isinstance(v, dict) and "rounds" in v:
                out.append(f"{key[2:]} {c} {v['rounds']}")
    return ", ".join(out) or "n/a"


def _interference(results: dict[str, Any]) -> str:
    rows = ["| scenario | direct | Aperture | Portkey | LiteLLM |", "|---|---:|---:|---:|---:|"]
    worst = 0.0
    for scen, entries in results.get("scenarios", {}).items():
        cells = []
        for c in CONTENDERS:
            v = _get(entries, c, "other_cpu_cores")
            if isinstance(v, int | float):
                worst = max(worst, v)
                cells.append(f"{v:.2f}" + (" ⚠" if v >= 0.3 else ""))
            else:
                cells.append("—")
        rows.append(f"| {scen} | " + " | ".join(cells) + " |")
    others = results.get("meta", {}).get("other_processes") or []
    tail = ""
    if others:
        tail = "\n\nBusiest other processes still alive at the end of the run (CPU seconds " \
               "during the run):\n\n" + "\n".join(f"- {o['cpu_s']} s: `{o['cmd']}`"
                                                  for o in others)
    verdict = ("No measurement saw more than 0.3 CPU of outside load." if worst < 0.3 else
               f"⚠ marks measurements that shared the CPUs with ≥ 0.3 CPU of outside load "
               f"(worst {worst:.2f}); their figures are pessimistic for every contender hit, "
               "so rerun on a quiet machine before quoting them.")
    return "\n".join(rows) + "\n\n" + verdict + tail


def markdown(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    plan = meta.get("plan", {})
    img = results.get("vision_image", {})
    up = meta.get("upstream", {})
    quick = " — **QUICK SMOKE RUN, not for publishing**" if meta.get("quick") else ""
    rows = build_rows(results)
    checks = results.get("checks", {})
    check_lines = []
    for contender, entries in checks.items():
        bad = {k: v for k, v in entries.items() if v != "200"}
        check_lines.append(f"- {contender}: " + ("all pre-checks answered 200" if not bad else
                                                 "; ".join(f"{k}: {v}" for k, v in bad.items())))
    dl = results.get("scenarios", {}).get("a_throughput_default_logs", {})
    return f"""# Aperture vs Portkey vs LiteLLM vs direct — benchmark results{quick}

Produced by `bench/run` on {meta.get('date')} in one run of {meta.get('wall_s')} s. Every
number below comes from that run, on one machine, against the same local upstream.

## Summary (for the README)

{readme_table(results)}
## Every figure

![chart](chart.png)

{table(rows)}

Ratios are Aperture's figure divided by the other's; whether above or below 1 is good depends
on the *better* column. "—" means the ratio is not meaningful (the direct path has no gateway
process, or added latency is zero by definition).

## (g) Image cost-growth curve and the translated path

Sequential (`wrk -t1 -c1 -d{plan.get('curve_s')}s` per point), noise JPEGs as data URIs.
"Added" is the gateway's p50 minus the direct path's for the same point; ms/MB divides it by
the image bytes in the request. Translated points send the OpenAI shape to the gateway and
the gateway sends Anthropic Messages on (the direct path sends the Anthropic body itself);
the ratio is translated over pass-through at the same bytes.

{image_scenarios.markdown(results)}

## The bare pass-through floors, scenario (a)

A proxy that reads the body, forwards it unchanged on a pooled connection and answers the
upstream's bytes (`bench/floor_proxy.py`), with no gateway work at all: the ceiling each
server + client stack leaves, measured with the same load in the same run.

{floors_table(results)}
## Machine and versions

- {meta.get('nproc')} CPUs: {meta.get('cpu')}; {meta.get('memory_gb')} GB RAM; {meta.get('os')},
  kernel {meta.get('kernel')}. Load generator, upstream and gateway share these CPUs (no pinning).
- Aperture: `{meta.get('aperture')}`, commit {meta.get('aperture_commit')} (working tree as it was),
  Python {meta.get('python')}, uvicorn + uvloop + httptools, **one process**,
  `--log-level warning`, default storage (SQLite `aperture.db` under `bench/work`, emptied
  before the run; Aperture records its per-request audit there, while LiteLLM without a
  database records nothing).
- LiteLLM proxy: `{meta.get('litellm')}` (`litellm[proxy]` from PyPI in `bench/.venv-litellm`),
  `litellm --num_workers 1`, no database, `LITELLM_LOCAL_MODEL_COST_MAP=True`,
  `LITELLM_LOG=WARNING` (the same log level as Aperture; it also silences uvicorn's access log).
  Its default install has no `httptools`, so its uvicorn parses HTTP with `h11`.
- Portkey gateway: `{meta.get('portkey')}` (npm, in `bench/.node-portkey`), `node
  start-server.js --headless` with `NODE_ENV=production`, routed per request by
  `x-portkey-provider` and `x-portkey-custom-host` headers (no config file, no logging
  backend).
- Floors: `{meta.get('floors')}` (`bench/.venv-floors`), one process each.
- Load: `{meta.get('wrk')}`; upstream: `{meta.get('nginx')}`.

## Method

- **Upstream** (every contender hits the same one): {up.get('server')}. Ports:
  {', '.join(f"{k} :{v}" for k, v in (up.get('ports') or {}).items())}. Each reads the whole
  request body first (`echo_read_request_body`; a `return 200` that answers before the body is
  read would make 5 MB uploads meaningless) and answers a canned Chat Completions JSON at once,
  the same after {int(1000 * (up.get('delay_s') or 0))} ms (`echo_sleep`), a canned SSE stream
  at once,
  a paced SSE stream (first event after {int(1000 * (up.get('delay_s') or 0))} ms, then
  {up.get('paced_chunks')} content events {int(1000 * (up.get('paced_gap_s') or 0))} ms apart,
  then finish, usage and `[DONE]`), and a canned Anthropic Messages JSON. nginx in C with one
  worker is far faster than either gateway, so it never is the bottleneck for them.
- **Auth**: LiteLLM 1.106 refuses to start without a master key, so both gateways get the same
  `master_key` and every client sends `Authorization: Bearer <key>` (nginx ignores it).
- **Direct** = the same request bodies sent straight to the upstream (model name changed to the
  upstream's). The gateways are configured with the same providers and `bench-*` model names.
  The gateways run one at a time (the others are stopped), after a warm-up.
- **(a)** `wrk -t{plan.get('throughput_threads')} -c{plan.get('throughput_conns')}
  -d{plan.get('throughput_s')}s` after a {plan.get('warmup_s')} s warm-up; closed loop, small
  text request (`bench/lua/post.lua`). (a′) repeats it with Aperture's default `--log-level info`
  (one JSON log line per request to a file) and LiteLLM without `LITELLM_LOG` (uvicorn access
  log on), both logging to a file: {', '.join(f"{k}: {v.get('log_level')}" for k, v in dl.items()) or 'not run'}.
- **(b)** `wrk -t1 -c{plan.get('paced_conns')} -d{plan.get('paced_s')}s` with
  `bench/lua/paced.lua`, which paces wrk to **{plan.get('paced_rate')} req/s** total (a send
  schedule 1/rate apart; every connection waits for the next slot). wrk2 is not packaged in
  Debian, so there is no coordinated-omission correction: latency is timed from the actual
  send, and a missed slot shows as a lower achieved rate (reported). Upstream adds 50 ms.
  *Added latency* = the contender's percentile minus the direct path's same percentile, both
  measured in this run (percentiles of a difference are not differences of percentiles: read
  p99 as indicative).
- **(c)** a Python asyncio + aiohttp client (`harness.py::_streams`) opens {plan.get('streams')}
  streams at once, {plan.get('stream_rounds')} rounds after one discarded round (fewer, but at
  least 2, when a contender needs more than {plan.get('stream_cap_s')} s: rounds run —
  {_rounds(results)}). TTFB = from
  sending the request to the first non-empty body chunk; total = until the stream ends. The
  client runs on the same 2 CPUs as everything else, which inflates every contender equally.
  Gateway CPU per stream = the gateway process tree's user + system CPU (`/proc`) over the
  scenario, divided by the streams served (the discarded round included). *Per chunk*: both
  scenarios carry the same 14 events, which the instant upstream writes at once and the paced
  one in 12 writes; CPU per chunk = (c2's CPU per stream minus c1's) / 11. Added latency per
  chunk = how much later than on the direct path the last chunk of the paced stream arrives
  (total p50 minus the direct total p50), the stream sent one at a time
  ({plan.get('single_stream_rounds')} rounds): its chunks come 10 ms apart, so a gateway that
  keeps up relays each as it comes and the last one's delay is what a chunk costs (under 100
  streams at once the paced events wait for a gateway that starts late and leave in a burst).
- **(d)** a real {img.get('bytes', 0) / 1e6:.2f} MB JPEG of random noise
  ({img.get('width')}×{img.get('height')}, quality {img.get('quality')}, so it does not
  compress) as a base64 data URI; request body {img.get('body_bytes', 0) / 1e6:.2f} MB.
  `wrk -t1 -c1 -d{plan.get('vision_s')}s` (sequential). Peak RSS = VmHWM of the gateway
  process (sum over its process tree), reset with `/proc/<pid>/clear_refs` just before the run.
  (d′) sends the same image to a model whose upstream speaks Anthropic Messages; the direct
  path sends the Anthropic-native body straight to it. Aperture: {results.get('scenarios', {}).get('d_vision_anthropic', {}).get('aperture', {}).get('na', 'measured (its config accepted a `kind: anthropic` provider, and the pre-check answered 200)')}.
- **(e)** wall time from `Popen` of the gateway command until `GET /healthz` (Aperture) or
  `GET /health/liveliness` (LiteLLM) answers 200, polled every 10 ms; median of
  {plan.get('cold_runs')} runs; the gateway's first start of the run (which warms the page
  cache and bytecode) is discarded.
- **Warm-up**: after start, each gateway gets every request kind 10 times (vision 3) and
  {plan.get('gateway_warmup_s')} s of `wrk -c8` before anything is measured (LiteLLM loads
  features lazily: its first requests take seconds).
- **(f)** VmRSS of the gateway process tree from `/proc`: ready = when health first answers;
  idle = 2 s after the warm-up;
  loaded = maximum sampled every 100 ms during (a); session peak = the largest of that and the
  VmHWM readings after (d) and (d′). Upstream nginx RSS at the end: {meta.get('nginx_rss_mb')} MB.

## Interference from the rest of the machine

The machine is shared: other processes (test runs, installs) can take CPU during a
measurement. Before each measurement the harness waits (up to {plan.get('quiet_max_wait_s')} s
each, {plan.get('quiet_budget_s')} s per run; {meta.get('quiet_wait_total_s')} s were spent)
until other processes use less than {plan.get('quiet_threshold')} CPU for one second, and it
records how much CPU they used *during* each measurement (out of {meta.get('nproc')}):

{_interference(results)}

Pre-checks (each contender must answer 200, and streams must end with `[DONE]`, before it is
measured):
{chr(10).join(check_lines)}

## Profile of Aperture under (a)

{_profile_md(results.get('profile'))}
"""


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = results.get("scenarios", {})
    colors = {"direct": "#9e9e9e", "aperture": "#1f77b4", "portkey": "#2ca02c",
              "litellm": "#ff7f0e"}
    labels = NAMES
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    fig.suptitle(f"Aperture vs Portkey vs LiteLLM vs direct — {results.get('meta', {}).get('date')} "
                 f"({results.get('meta', {}).get('nproc')} CPUs, one worker each)")

    def num(x: Any) -> float:
        return float(x) if isinstance(x, int | float) else 0.0

    def bars(ax: Any, groups: list[str], series: dict[str, list[Any]], title: str,
             ylabel: str, log: bool = False) -> None:
        if log:
            ax.set_yscale("log")
        n = len(series)
        width = 0.8 / max(n, 1)
        for i, (name, values) in enumerate(series.items()):
            xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
            heights = [num(v) if not log or num(v) > 0 else float("nan") for v in values]
            rects = ax.bar(xs, heights, width, label=labels.get(name, name),
                           color=colors.get(name))
            for rect, v in zip(rects, values, strict=True):
                text = f"{v:,.0f}" if isinstance(v, int | float) and v >= 100 else (
                    f"{v:.1f}" if isinstance(v, int | float) else "n/a")
                ax.annotate(text, (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                            ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(groups)), groups, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)

    def g(scen: str, c: str, *keys: str) -> Any:
        return _get(s.get(scen, {}).get(c, {}), *keys)

    cs = CONTENDERS
    bars(axes[0][0], ["log level warning", "default log level"],
         {c: [g("a_throughput", c, "rps"),
              g("a_throughput_default_logs", c, "rps") if c != "direct" else None] for c in cs},
         "(a) throughput, c=64 (higher is better; log scale)", "requests/s", log=True)
    base = {p: g("b_paced_50ms", "direct", "latency_ms", p) for p in ("p50", "p99")}
    added = {c: [num(g("b_paced_50ms", c, "latency_ms", p)) - num(base[p])
                 if isinstance(g("b_paced_50ms", c, "latency_ms", p), int | float) else None
                 for p in ("p50", "p99")] for c in GATEWAYS}
    bars(axes[0][1], ["p50", "p99"], added, "(b) added latency at 100 req/s (lower is better)",
         "ms over direct")
    bars(axes[0][2], ["instant TTFB p50", "instant total p50", "paced TTFB p50",
                      "paced total p50"],
         {c: [g("c_stream_instant", c, "ttfb_ms", "p50"), g("c_stream_instant", c, "total_ms", "p50"),
              g("c_stream_paced", c, "ttfb_ms", "p50"), g("c_stream_paced", c, "total_ms", "p50")]
          for c in cs}, "(c) 100 concurrent streams (lower is better; log scale)", "ms", log=True)
    bars(axes[1][0], ["→ OpenAI-compat p50", "→ Anthropic p50"],
         {c: [g("d_vision_openai", c, "latency_ms", "p50"),
              g("d_vision_anthropic", c, "latency_ms", "p50")] for c in cs},
         "(d) 4 MB JPEG data URI, sequential (lower is better; log scale)", "ms", log=True)
    bars(axes[1][1], ["cold start"],
         {c: [num(g("e_cold_start", c, "median_ms")) / 1000] for c in GATEWAYS},
         "(e) spawn → health 200 (lower is better)", "seconds")
    bars(axes[1][2], ["idle", "loaded (a)", "vision peak", "session peak"],
         {c: [g("f_memory", c, "idle_rss_mb"), g("f_memory", c, "loaded_rss_mb"),
              g("d_vision_openai", c, "peak_rss_mb"), g("f_memory", c, "session_peak_rss_mb")]
          for c in GATEWAYS}, "(f) gateway RSS (lower is better)", "MB")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or args.results.parent
    results = json.loads(args.results.read_text())
    (out / "results.md").write_text(markdown(results))
    chart(results, out / "chart.png")
    print(f"wrote {out / 'results.md'} and {out / 'chart.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
