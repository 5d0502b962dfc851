"""Aperture vs the LiteLLM proxy vs the direct path: one machine, one run, one upstream.

Started by ``bench/run`` (which installs the tools); writes ``bench/results/results.json``
and then calls ``report.py`` for ``results.md`` and ``chart.png``.

Everything here is orchestration: the throughput and fixed-rate load comes from ``wrk``
(C, Lua body scripts in ``bench/lua``); only the 100-stream TTFB measurement uses an
asyncio/aiohttp client, because wrk cannot time the first byte of a body.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import image_scenarios

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
RESULTS = BENCH / "results"
LUA = BENCH / "lua"
PIDS_FILE = WORK / "pids"

APERTURE_BIN = Path(os.environ.get("APERTURE_BIN", ROOT / ".venv" / "bin" / "aperture"))
LITELLM_VENV = BENCH / ".venv-litellm"
LITELLM_BIN = LITELLM_VENV / "bin" / "litellm"
TOOLS_VENV = BENCH / ".venv-tools"
FLOORS_VENV = BENCH / ".venv-floors"
PORTKEY_START = (BENCH / ".node-portkey" / "node_modules" / "@portkey-ai" / "gateway" / "build"
                 / "start-server.js")
# The bare pass-through floors (bench/floor_proxy.py): server x client, scenario (a) only.
FLOORS = (("uvicorn", "aiohttp"), ("uvicorn", "pyreqwest"), ("granian", "aiohttp"),
          ("granian", "pyreqwest"))
PY_SPY = TOOLS_VENV / "bin" / "py-spy"

HOST = "127.0.0.1"
# One nginx, one port per upstream behaviour, so every provider has the plain `/v1` base URL.
UP_FAST = 18090  # canned chat.completion at once
UP_SLOW = 18091  # the same after 50 ms
UP_STREAM = 18092  # canned SSE stream at once
UP_PACED = 18093  # SSE stream: first event after 50 ms, then 10 content events 10 ms apart
UP_ANTHROPIC = 18094  # canned Anthropic Messages answer at /v1/messages
APERTURE_PORT = 18100
LITELLM_PORT = 18200
PORTKEY_PORT = 18250
FLOOR_PORT = 18300  # the bare pass-through floors, one at a time
UPSTREAM_MODEL = "bench-upstream"
# LiteLLM refuses to start without a master key, so both gateways get the same one and every
# client (the direct path too, where nginx ignores it) sends it.
MASTER_KEY = "sk-bench-" + "5f1c0a7e9d3b4c2a8e6f0b1d7c9a3e5f2b4d6c8a0e1f3a5c7e9b1d3f5a7c9e1b"
UPSTREAM_DELAY_S = 0.050
PACED_CHUNKS = 10
PACED_GAP_S = 0.010
# The upstream's writes per stream (each flushed apart): the instant stream is one write; the
# paced one is the role event, each content event, then the finish, usage and [DONE] together.
STREAM_WRITES = {"c_stream_instant": 1, "c_stream_paced": 1 + PACED_CHUNKS + 1}

CONTENDERS = ("direct", "aperture", "portkey", "litellm")


# --------------------------------------------------------------------------- settings


@dataclass
class Plan:
    throughput_s: int = 15
    throughput_conns: int = 64
    throughput_threads: int = 2
    warmup_s: int = 3
    paced_rate: int = 100
    paced_conns: int = 16
    paced_s: int = 15
    streams: int = 100
    stream_rounds: int = 5
    single_stream_rounds: int = 20  # one paced stream at a time: the per-chunk latency
    vision_s: int = 10
    curve_s: int = 6  # per point of the image cost-growth curve (g)
    vision_target_bytes: int = 4_000_000
    cold_runs: int = 3
    profile_s: int = 10
    gateway_warmup_s: int = 8
    quiet_threshold: float = 0.3  # CPUs used by other processes that count as "busy"
    quiet_max_wait_s: float = 15  # per measurement
    quiet_budget_s: float = 60  # for the whole run, so a busy machine cannot stretch it forever
    stream_cap_s: float = 25  # per stream scenario: stop adding rounds after this (min 2 rounds)
    default_logs: bool = True
    profile: bool = True
    litellm: bool = True
    portkey: bool = True
    floors: bool = True

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            throughput_s=4, warmup_s=1, paced_s=4, stream_rounds=2, single_stream_rounds=8,
            vision_s=3, curve_s=2,
            cold_runs=1,
            profile_s=3, gateway_warmup_s=2, quiet_max_wait_s=3, quiet_budget_s=20,
        )


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


class Processes:
    """Every process the bench starts, each in its own session; all stopped on exit."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        WORK.mkdir(parents=True, exist_ok=True)
        PIDS_FILE.write_text("")

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              log_name: str | None = None) -> subprocess.Popen[bytes]:
        out = open(WORK / "logs" / f"{log_name or name}.log", "ab")  # noqa: SIM115
        out.write(f"\n==== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, start_new_session=True, cwd=WORK,
        )
        out.close()
        self._procs.append(proc)
        with PIDS_FILE.open("a") as f:
            f.write(f"{proc.pid} {Path(argv[0]).name}\n")
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        # Children left in the group (workers) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self._procs)):
            self.stop(proc)
        PIDS_FILE.write_text("")


# --------------------------------------------------------------------------- /proc memory


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            kids.append(int(entry))
    return kids


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_kb(pid: int, key: str) -> int:
    return sum(status_kb(p, key) for p in tree(pid))


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (``clear_refs`` 5, Linux >= 4.0)."""
    for p in tree(pid):
        with contextlib.suppress(OSError):
            Path(f"/proc/{p}/clear_refs").write_text("5")


class RssSampler:
    """Samples the RSS of a process tree every 100 ms; keeps the maximum."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.max_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and self.pid:
            self.max_kb = max(self.max_kb, tree_kb(self.pid, "VmRSS"))
            self._stop.wait(0.1)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- CPU of others

HZ = os.sysconf("SC_CLK_TCK")


def _machine_busy() -> int:
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system irq softirq steal


def _our_busy() -> int:
    """CPU ticks of this harness and every process it started (live or reaped)."""
    total = 0
    for pid in tree(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total


class CpuMeter:
    """How much CPU the rest of the machine (not the bench) used during a measurement.

    The bench shares 2 CPUs with whatever else runs; this makes that visible per scenario.
    """

    def __enter__(self) -> CpuMeter:
        self._t = time.monotonic()
        self._busy = _machine_busy()
        self._ours = _our_busy()
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = max(time.monotonic() - self._t, 1e-3)
        busy = _machine_busy() - self._busy
        ours = _our_busy() - self._ours
        self.other_cores = round(max(0, busy - ours) / HZ / seconds, 2)
        self.bench_cores = round(ours / HZ / seconds, 2)


def wait_quiet(threshold: float, max_wait: float) -> dict[str, float]:
    """Wait (at most ``max_wait`` s) until other processes use < ``threshold`` CPUs for 1 s."""
    t0 = time.monotonic()
    level = 0.0
    while True:
        with CpuMeter() as meter:
            time.sleep(1.0)
        level = meter.other_cores
        waited = time.monotonic() - t0
        if level < threshold or waited >= max_wait:
            if waited > 1.5:
                log(f"  waited {waited:.0f}s for the machine to be quiet "
                    f"(other processes now at {level:.2f} CPUs)")
            return {"waited_s": round(waited - 1.0, 1), "other_cores_before": level}


# --------------------------------------------------------------------------- HTTP helpers


def http_request(port: int, method: str, path: str, body: bytes | None = None,
                 timeout: float = 30.0, extra: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {MASTER_KEY}", **(extra or {})}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((HOST, port)) != 0


def compile_aperture_bytecode() -> None:
    """Byte-compile Aperture's package, as ``pip install`` of a wheel (the Docker image) does.

    The checkout's editable install is otherwise compiled from source at every start when
    PYTHONDONTWRITEBYTECODE is set (as on this machine): 0.2-0.4 s of each cold start that no
    installed gateway pays. The other contenders' packages were compiled by pip.
    """
    python = APERTURE_BIN.parent / "python"
    if not python.exists():
        return
    subprocess.run([str(python), "-c", "import aperture, compileall, os; compileall.compile_dir("
                    "os.path.dirname(aperture.__file__), quiet=1)"], check=True)


def wait_ready(proc: subprocess.Popen[bytes], port: int, path: str, timeout: float = 90.0,
               started: float | None = None) -> float:
    """Seconds from ``started`` until ``GET path`` answers 200 (polled every 10 ms)."""
    t0 = started if started is not None else time.perf_counter()
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before it was ready")
        try:
            status, _ = http_request(port, "GET", path, timeout=1.0)
            if status == 200:
                return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"not ready on :{port}{path} after {timeout:.0f}s")


# --------------------------------------------------------------------------- wrk


def run_wrk(url: str, script: str, args: list[str], *, threads: int, conns: int,
            duration_s: float, timeout_s: int = 10,
            extra: dict[str, str] | None = None) -> dict[str, Any]:
    headers = [x for k, v in (extra or {}).items() for x in ("-H", f"{k}: {v}")]
    argv = [
        "wrk", f"-t{threads}", f"-c{conns}", f"-d{duration_s}s", f"--timeout={timeout_s}s",
        "-H", f"Authorization: Bearer {MASTER_KEY}", *headers, "-s", str(LUA / script), url,
        "--", *args,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = raw["duration_us"] / 1e6
    lat = {k: v / 1000 for k, v in raw["latency_us"].items()}  # -> ms
    errors = raw["errors"]
    return {
        "tool": " ".join(["wrk", *argv[1:5], "-s", script]),  # headers left out
        "duration_s": round(seconds, 2),
        "requests": raw["requests"],
        "rps": round(raw["requests"] / seconds, 1),
        "latency_ms": {k: round(v, 3) for k, v in lat.items()},
        "errors": errors,
        "error_count": sum(errors.values()),
    }


# --------------------------------------------------------------------------- streams


async def _streams(port: int, body: bytes, concurrency: int, rounds: int,
                   cap_s: float = 1e9, extra: dict[str, str] | None = None) -> dict[str, Any]:
    import aiohttp

    url = f"http://{HOST}:{port}/v1/chat/completions"
    ttfb: list[float] = []
    total: list[float] = []
    after_first: list[float] = []  # from the first byte to the end: the chunks that follow
    failures: list[str] = []

    async def one(session: aiohttp.ClientSession) -> tuple[float, float] | str:
        t0 = time.perf_counter()
        first: float | None = None
        received = bytearray()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}",
                   **(extra or {})}
        async with session.post(url, data=body, headers=headers) as response:
            async for chunk in response.content.iter_any():
                if first is None and chunk.strip():
                    first = time.perf_counter()
                received += chunk
            end = time.perf_counter()
            if response.status != 200:
                return f"HTTP {response.status}: {bytes(received[:200])!r}"
        if b"[DONE]" not in received or first is None:
            return f"stream without [DONE]: {bytes(received[-200:])!r}"
        return first - t0, end - t0

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t_start = time.perf_counter()
        done_rounds = 0
        for round_no in range(rounds + 1):  # round 0 opens the connections and is discarded
            if done_rounds >= 2 and time.perf_counter() - t_start > cap_s:
                break
            done_rounds = round_no
            outcomes = await asyncio.gather(*(one(session) for _ in range(concurrency)),
                                            return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    failures.append(repr(outcome))
                elif isinstance(outcome, str):
                    failures.append(outcome)
                elif round_no > 0:
                    ttfb.append(outcome[0] * 1000)
                    total.append(outcome[1] * 1000)
                    after_first.append((outcome[1] - outcome[0]) * 1000)
            await asyncio.sleep(0.2)
    return {
        "tool": f"python asyncio+aiohttp client, {concurrency} concurrent streams x "
                f"{done_rounds} rounds",
        "rounds": done_rounds,
        "samples": len(ttfb),
        "failures": len(failures),
        "failure_examples": failures[:3],
        "ttfb_ms": _pcts(ttfb),
        "total_ms": _pcts(total),
        "after_first_ms": _pcts(after_first),
        "streams_served": concurrency * (done_rounds + 1),  # round 0 is served too
    }


def _pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]

    return {
        "p50": round(statistics.median(ordered), 3), "p90": round(pct(90), 3),
        "p99": round(pct(99), 3), "max": round(ordered[-1], 3),
        "mean": round(statistics.fmean(ordered), 3),
    }


# --------------------------------------------------------------------------- inputs


def make_jpeg(target_bytes: int) -> tuple[Path, dict[str, Any]]:
    """A real JPEG of random noise (incompressible) of about ``target_bytes``."""
    from PIL import Image

    path = WORK / "vision.jpg"
    rng = random.Random(20261120)
    side = 1200
    for _ in range(8):
        img = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        img.save(path, "JPEG", quality=90)
        size = path.stat().st_size
        if abs(size - target_bytes) / target_bytes < 0.03:
            break
        side = max(64, int(side * (target_bytes / size) ** 0.5))
    return path, {"bytes": path.stat().st_size, "width": side, "height": side, "quality": 90}


def chat_body(model: str, *, stream: bool = False, image_b64: str | None = None) -> bytes:
    content: Any = "Say hello in one short sentence."
    if image_b64 is not None:
        content = [
            {"type": "text", "text": "Describe this image in one sentence."},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image_b64}"}},
        ]
    body: dict[str, Any] = {
        "model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 32,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def anthropic_body(image_b64: str) -> bytes:
    return json.dumps({
        "model": UPSTREAM_MODEL, "max_tokens": 32,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Describe this image in one sentence."},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                         "data": image_b64}},
        ]}],
    }, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- upstream


def _completion_json() -> str:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1763683200,
        "model": UPSTREAM_MODEL, "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": {
            "role": "assistant", "content": "Hello! How can I help you today?", "refusal": None}}],
        "usage": {"prompt_tokens": 14, "completion_tokens": 9, "total_tokens": 23},
    }, separators=(",", ":"))


def _sse_events() -> list[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None,
              choices: bool = True) -> str:
        payload: dict[str, Any] = {
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1763683200,
            "model": UPSTREAM_MODEL, "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish}] if choices else [],
        }
        if usage is not None:
            payload["usage"] = usage
        return "data: " + json.dumps(payload, separators=(",", ":")) + "\\n\\n"

    words = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?", ""]
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": w}) for w in words[:PACED_CHUNKS]]
    events.append(chunk({}, finish="stop"))
    events.append(chunk({}, usage={"prompt_tokens": 14, "completion_tokens": 10,
                                   "total_tokens": 24}, choices=False))
    events.append("data: [DONE]\\n\\n")
    return events


def _anthropic_json() -> str:
    return json.dumps({
        "id": "msg_bench", "type": "message", "role": "assistant", "model": UPSTREAM_MODEL,
        "content": [{"type": "text", "text": "A square of colourful random noise."}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 1600, "output_tokens": 9},
    }, separators=(",", ":"))


def nginx_conf() -> str:
    ngx = WORK / "nginx"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (ngx / sub).mkdir(parents=True, exist_ok=True)
    events = _sse_events()
    role, contents, tail = events[0], events[1:-3], events[-3:]
    instant = "".join(f"echo -n '{e}'; " for e in events)
    paced = f"echo_sleep {UPSTREAM_DELAY_S}; echo -n '{role}'; echo_flush; "
    for e in contents:
        paced += f"echo_sleep {PACED_GAP_S}; echo -n '{e}'; echo_flush; "
    paced += "".join(f"echo -n '{e}'; " for e in tail)
    completion = _completion_json()

    def server(port: int, body: str) -> str:
        return f"  server {{\n    listen {HOST}:{port} backlog=4096;\n{body}  }}\n"

    return (
        "load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;\n"
        "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\n"
        f"pid {ngx}/nginx.pid;\nerror_log {WORK}/logs/nginx-error.log warn;\n"
        "events { worker_connections 8192; multi_accept on; }\n"
        "http {\n  access_log off;\n  server_tokens off;\n"
        f"  client_body_temp_path {ngx}/body;\n  proxy_temp_path {ngx}/proxy;\n"
        f"  fastcgi_temp_path {ngx}/fastcgi;\n  uwsgi_temp_path {ngx}/uwsgi;\n"
        f"  scgi_temp_path {ngx}/scgi;\n"
        "  client_max_body_size 128m;\n  client_body_buffer_size 64m;\n"
        "  keepalive_requests 10000000;\n  keepalive_timeout 300s;\n"
        "  tcp_nodelay on;\n"
        + server(UP_FAST, "    location = /v1/chat/completions {\n"
                 "      default_type application/json;\n      echo_read_request_body;\n"
                 f"      echo -n '{completion}';\n    }}\n")
        + server(UP_SLOW, "    location = /v1/chat/completions {\n"
                 "      default_type application/json;\n      echo_read_request_body;\n"
                 f"      echo_sleep {UPSTREAM_DELAY_S};\n      echo -n '{completion}';\n    }}\n")
        + server(UP_STREAM, "    location = /v1/chat/completions {\n"
                 "      default_type text/event-stream;\n      echo_read_request_body;\n"
                 f"      {instant}\n    }}\n")
        + server(UP_PACED, "    location = /v1/chat/completions {\n"
                 "      default_type text/event-stream;\n      echo_read_request_body;\n"
                 f"      {paced}\n    }}\n")
        + server(UP_ANTHROPIC, "    location = /v1/messages {\n"
                 "      default_type application/json;\n      echo_read_request_body;\n"
                 f"      echo -n '{_anthropic_json()}';\n    }}\n")
        + "}\n"
    )


# --------------------------------------------------------------------------- gateways


def aperture_config(with_anthropic: bool) -> dict[str, Any]:
    def provider(name: str, port: int, kind: str = "openai") -> dict[str, Any]:
        return {"name": name, "kind": kind, "base_url": f"http://{HOST}:{port}/v1",
                "api_key": "bench"}

    providers = [provider("up", UP_FAST), provider("up-slow", UP_SLOW),
                 provider("up-stream", UP_STREAM), provider("up-paced", UP_PACED)]
    models = [
        {"name": "bench-text", "provider": "up", "upstream_model": UPSTREAM_MODEL,
         "capabilities": ["vision"]},
        {"name": "bench-slow", "provider": "up-slow", "upstream_model": UPSTREAM_MODEL,
         "capabilities": ["vision"]},
        {"name": "bench-stream", "provider": "up-stream", "upstream_model": UPSTREAM_MODEL,
         "capabilities": ["vision"]},
        {"name": "bench-paced", "provider": "up-paced", "upstream_model": UPSTREAM_MODEL,
         "capabilities": ["vision"]},
    ]
    if with_anthropic:
        providers.append({"name": "up-anthropic", "kind": "anthropic",
                          "base_url": f"http://{HOST}:{UP_ANTHROPIC}", "api_key": "bench"})
        models.append({"name": "bench-claude", "provider": "up-anthropic",
                       "upstream_model": UPSTREAM_MODEL, "capabilities": ["vision"]})
    return {
        "server": {"host": HOST, "port": APERTURE_PORT, "max_body_bytes": 64 * 1024 * 1024},
        "auth": {"master_key": MASTER_KEY},
        "providers": providers,
        "models": models,
    }


def litellm_config() -> dict[str, Any]:
    def entry(name: str, port: int) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {
            "model": f"openai/{UPSTREAM_MODEL}", "api_base": f"http://{HOST}:{port}/v1",
            "api_key": "bench"}, "model_info": {"supports_vision": True}}

    return {
        "model_list": [
            entry("bench-text", UP_FAST), entry("bench-slow", UP_SLOW),
            entry("bench-stream", UP_STREAM), entry("bench-paced", UP_PACED),
            {"model_name": "bench-claude", "litellm_params": {
                "model": "anthropic/claude-sonnet-4-5", "api_base": f"http://{HOST}:{UP_ANTHROPIC}",
                "api_key": "bench"}},
        ],
        # The same master key as Aperture, and no database_url: no virtual keys, no spend logs.
        "general_settings": {"master_key": MASTER_KEY},
        "litellm_settings": {},
    }


@dataclass
class Gateway:
    name: str
    port: int
    health: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    """Extra request headers per body kind (Portkey is configured per request)."""


def aperture_gateway(config: Path, log_level: str, workers: int = 1) -> Gateway:
    argv = [str(APERTURE_BIN), "serve", "--config", str(config), "--host", HOST,
            "--port", str(APERTURE_PORT), "--log-level", log_level]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return Gateway("aperture", APERTURE_PORT, "/healthz", argv)


def litellm_gateway(config: Path, log_level: str | None) -> Gateway:
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "DISABLE_SCHEMA_UPDATE": "True",
           "LITELLM_TELEMETRY": "False", "NO_DOCS": "True"}
    if log_level is not None:
        env["LITELLM_LOG"] = log_level
    return Gateway("litellm", LITELLM_PORT, "/health/liveliness", [
        str(LITELLM_BIN), "--config", str(config), "--host", HOST, "--port", str(LITELLM_PORT),
        "--num_workers", "1"], env)


def portkey_headers() -> dict[str, dict[str, str]]:
    """Portkey routes each request by its headers: provider and custom host per body kind
    (the client's ``Authorization`` is forwarded to the upstream, which ignores it)."""
    def openai(port: int) -> dict[str, str]:
        return {"x-portkey-provider": "openai",
                "x-portkey-custom-host": f"http://{HOST}:{port}/v1"}

    return {"text": openai(UP_FAST), "slow": openai(UP_SLOW), "stream": openai(UP_STREAM),
            "paced": openai(UP_PACED), "vision": openai(UP_FAST),
            "vision_anthropic": {"x-portkey-provider": "anthropic",
                                 "x-portkey-custom-host": f"http://{HOST}:{UP_ANTHROPIC}/v1"}}


def portkey_gateway() -> Gateway:
    # --headless and NODE_ENV=production: no console UI, no log streaming to it.
    return Gateway("portkey", PORTKEY_PORT, "/", [
        "node", str(PORTKEY_START), f"--port={PORTKEY_PORT}", "--headless"],
        {"NODE_ENV": "production"}, portkey_headers())


def floor_gateway(server: str, client: str) -> Gateway:
    return Gateway(f"floor-{server}-{client}", FLOOR_PORT, "/healthz", [
        str(FLOORS_VENV / "bin" / "python"), str(BENCH / "floor_proxy.py"), "--server", server,
        "--client", client, "--port", str(FLOOR_PORT), "--upstream", f"http://{HOST}:{UP_FAST}"])


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (threads included)."""
    total = 0
    for each in tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / HZ


# --------------------------------------------------------------------------- the run


class Bench:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.procs = Processes()
        self.results: dict[str, Any] = {"scenarios": {}, "checks": {}, "notes": []}
        self.bodies: dict[tuple[str, str], Path] = {}
        self.aperture_anthropic = False
        self.aperture_anthropic_reason = ""
        self.quiet_spent = 0.0
        self.headers: dict[str, dict[str, dict[str, str]]] = {}  # contender -> kind -> headers

    def hdr(self, contender: str, kind: str) -> dict[str, str]:
        return self.headers.get(contender, {}).get(kind, {})

    # ---- setup

    def body(self, contender: str, scenario: str) -> Path:
        return self.bodies[(contender, scenario)]

    def prepare(self) -> None:
        (WORK / "logs").mkdir(parents=True, exist_ok=True)
        (WORK / "bodies").mkdir(parents=True, exist_ok=True)
        # Aperture's default storage (sqlite:///aperture.db and its spool, relative to the
        # working directory bench/work) starts empty every run.
        for leftover in WORK.glob("aperture.db*"):
            leftover.unlink()
        shutil.rmtree(WORK / ".aperture-spool", ignore_errors=True)
        compile_aperture_bytecode()
        busy = [p for p in (UP_FAST, UP_SLOW, UP_STREAM, UP_PACED, UP_ANTHROPIC,
                            APERTURE_PORT, LITELLM_PORT, PORTKEY_PORT, FLOOR_PORT)
                if not port_free(p)]
        if busy:
            raise SystemExit(f"bench: ports already in use on {HOST}: {busy}")
        jpeg, meta = make_jpeg(self.plan.vision_target_bytes)
        b64 = base64.b64encode(jpeg.read_bytes()).decode()
        self.results["vision_image"] = {**meta, "base64_chars": len(b64)}
        models = {"direct": {"text": UPSTREAM_MODEL, "slow": UPSTREAM_MODEL,
                             "stream": UPSTREAM_MODEL, "paced": UPSTREAM_MODEL},
                  "aperture": {"text": "bench-text", "slow": "bench-slow",
                               "stream": "bench-stream", "paced": "bench-paced"}}
        for other in ("litellm", "portkey", *(f"floor-{s}-{c}" for s, c in FLOORS)):
            models[other] = models["aperture"]
        for contender, names in models.items():
            bodies = {
                "text": chat_body(names["text"]),
                "slow": chat_body(names["slow"]),
                "stream": chat_body(names["stream"], stream=True),
                "paced": chat_body(names["paced"], stream=True),
                "vision": chat_body(names["text"], image_b64=b64),
                "vision_anthropic": (anthropic_body(b64) if contender == "direct"
                                     else chat_body("bench-claude", image_b64=b64)),
            }
            for scenario, data in bodies.items():
                path = WORK / "bodies" / f"{contender}-{scenario}.json"
                path.write_bytes(data)
                self.bodies[(contender, scenario)] = path
        self.results["vision_image"]["body_bytes"] = self.body("aperture", "vision").stat().st_size
        self.results["image_curve_images"] = image_scenarios.prepare(WORK, UPSTREAM_MODEL)

        import yaml

        probe = WORK / "aperture-anthropic-probe.yaml"
        probe.write_text(yaml.safe_dump(aperture_config(with_anthropic=True), sort_keys=False))
        check = subprocess.run([str(APERTURE_BIN), "check-config", str(probe)],
                               capture_output=True, text=True)
        self.aperture_anthropic = check.returncode == 0
        self.aperture_anthropic_reason = (check.stderr or check.stdout).strip()
        self.aperture_yaml = WORK / "aperture.yaml"
        self.aperture_yaml.write_text(yaml.safe_dump(
            aperture_config(with_anthropic=self.aperture_anthropic), sort_keys=False))
        self.litellm_yaml = WORK / "litellm.yaml"
        self.litellm_yaml.write_text(yaml.safe_dump(litellm_config(), sort_keys=False))

        conf = WORK / "nginx.conf"
        conf.write_text(nginx_conf())
        test = subprocess.run(["nginx", "-t", "-c", str(conf), "-p", str(WORK / "nginx")],
                              capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError(f"nginx config: {test.stderr}")
        self.nginx = self.procs.start("nginx", ["nginx", "-c", str(conf), "-p",
                                                str(WORK / "nginx")])
        for port in (UP_FAST, UP_SLOW, UP_STREAM, UP_PACED):
            self._wait_port(port)
        self._wait_port(UP_ANTHROPIC)

    def _wait_port(self, port: int) -> None:
        for _ in range(500):
            if not port_free(port):
                return
            time.sleep(0.01)
        raise RuntimeError(f"upstream :{port} did not open")

    # ---- measurement helpers

    def quiet(self) -> dict[str, float]:
        left = self.plan.quiet_budget_s - self.quiet_spent
        gate = wait_quiet(self.plan.quiet_threshold, max(1.0, min(self.plan.quiet_max_wait_s, left)))
        self.quiet_spent += gate["waited_s"]
        return gate

    def measured(self, run: Any) -> dict[str, Any]:
        """Run ``run()`` once the machine is quiet; note the CPU other processes used."""
        gate = self.quiet()
        with CpuMeter() as meter:
            result: dict[str, Any] = run()
        result["other_cpu_cores"] = meter.other_cores
        result["bench_cpu_cores"] = meter.bench_cores
        result["quiet_wait_s"] = gate["waited_s"]
        return result

    def record(self, scenario: str, contender: str, value: dict[str, Any]) -> None:
        self.results["scenarios"].setdefault(scenario, {})[contender] = value

    def check(self, contender: str, port: int, scenario: str, path: str) -> str | None:
        """None when the contender answers 200 (and a whole stream); else the reason."""
        try:
            status, data = http_request(port, "POST", path,
                                        self.body(contender, scenario).read_bytes(),
                                        extra=self.hdr(contender, scenario))
        except OSError as exc:
            reason = f"request failed: {exc!r}"
        else:
            stream = scenario in ("stream", "paced")
            if status == 200 and (not stream or b"[DONE]" in data):
                self.results["checks"].setdefault(contender, {})[scenario] = "200"
                return None
            reason = f"HTTP {status}: {data[:300].decode(errors='replace')}"
        self.results["checks"].setdefault(contender, {})[scenario] = reason
        log(f"  {contender} {scenario}: check failed: {reason}")
        return reason

    def throughput(self, contender: str, port: int, pid: int | None, scenario: str) -> None:
        p = self.plan
        url = f"http://{HOST}:{port}/v1/chat/completions"
        body = str(self.body(contender, "text"))
        extra = self.hdr(contender, "text")
        run_wrk(url, "post.lua", [body], threads=p.throughput_threads, conns=p.throughput_conns,
                duration_s=p.warmup_s, extra=extra)
        cpu_before = tree_cpu_s(pid) if pid else 0.0
        with RssSampler(pid) as rss:
            result = self.measured(lambda: run_wrk(
                url, "post.lua", [body], threads=p.throughput_threads,
                conns=p.throughput_conns, duration_s=p.throughput_s, extra=extra))
        if pid:
            result["rss_max_mb"] = round(rss.max_kb / 1024, 1)
            # CPU per request: what a busy machine disturbs least (every thread, children).
            result["cpu_ms_per_request"] = round(
                1000 * (tree_cpu_s(pid) - cpu_before) / max(1, result["requests"]), 4)
        log(f"  ({scenario}) {contender}: {result['rps']} req/s, p50 "
            f"{result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms, "
            f"errors {result['error_count']}")
        self.record(scenario, contender, result)

    def paced(self, contender: str, port: int) -> None:
        p = self.plan
        url = f"http://{HOST}:{port}/v1/chat/completions"
        args = [str(self.body(contender, "slow")), str(p.paced_rate)]
        extra = self.hdr(contender, "slow")
        run_wrk(url, "paced.lua", args, threads=1, conns=p.paced_conns, duration_s=p.warmup_s,
                extra=extra)
        result = self.measured(lambda: run_wrk(url, "paced.lua", args, threads=1,
                                               conns=p.paced_conns, duration_s=p.paced_s,
                                               extra=extra))
        result["target_rps"] = p.paced_rate
        log(f"  (b) {contender}: {result['rps']} req/s, p50 {result['latency_ms']['p50']} ms, "
            f"p99 {result['latency_ms']['p99']} ms, errors {result['error_count']}")
        self.record("b_paced_50ms", contender, result)

    def streams(self, contender: str, port: int, scenario: str, pid: int | None = None) -> None:
        kind = "stream" if scenario == "c_stream_instant" else "paced"
        body = self.body(contender, kind).read_bytes()
        extra = self.hdr(contender, kind)
        concurrency, rounds = self.plan.streams, self.plan.stream_rounds
        if scenario == "c_stream_single":
            concurrency, rounds = 1, self.plan.single_stream_rounds
        cpu_before = tree_cpu_s(pid) if pid else 0.0
        result = self.measured(lambda: asyncio.run(
            _streams(port, body, concurrency, rounds, self.plan.stream_cap_s, extra)))
        if pid:
            result["cpu_ms_per_stream"] = round(
                1000 * (tree_cpu_s(pid) - cpu_before) / max(1, result["streams_served"]), 4)
        log(f"  ({scenario}) {contender}: TTFB p50 {result['ttfb_ms'].get('p50')} ms, "
            f"total p50 {result['total_ms'].get('p50')} ms, failures {result['failures']}")
        self.record(scenario, contender, result)

    def summarize_chunks(self, contender: str) -> None:
        """The per-chunk overhead of streams, apart from the stream's start: the same events
        in one upstream write (c1) or in twelve (c2)."""
        s = self.results["scenarios"]
        instant = s.get("c_stream_instant", {}).get(contender, {})
        paced = s.get("c_stream_paced", {}).get(contender, {})
        out: dict[str, Any] = {"upstream_writes_c1": STREAM_WRITES["c_stream_instant"],
                               "upstream_writes_c2": STREAM_WRITES["c_stream_paced"]}
        # Latency from one paced stream at a time: its chunks come 10 ms apart, so a gateway
        # that keeps up relays each as it comes, and the last one's delay over the direct
        # path is what a chunk costs (its start is in the TTFB). Under 100 streams at once,
        # or after a gateway holds its first chunk back, the paced events wait and leave in
        # a burst, which hides it.
        single = s.get("c_stream_single", {})
        ours = single.get(contender, {}).get("total_ms", {}).get("p50")
        base = single.get("direct", {}).get("total_ms", {}).get("p50")
        if ours is not None and base is not None:
            out["added_ms_per_chunk"] = round(ours - base, 3)
        a, b = instant.get("cpu_ms_per_stream"), paced.get("cpu_ms_per_stream")
        if a is not None and b is not None:
            writes = STREAM_WRITES["c_stream_paced"] - STREAM_WRITES["c_stream_instant"]
            out["cpu_ms_per_chunk"] = round((b - a) / writes, 4)
        if len(out) > 2:
            self.record("c_stream_chunks", contender, out)
            log(f"  (c) {contender} per chunk: added {out.get('added_ms_per_chunk')} ms, CPU "
                f"{out.get('cpu_ms_per_chunk')} ms")

    def vision(self, contender: str, port: int, pid: int | None, scenario: str) -> None:
        path = "/v1/messages" if (contender == "direct" and scenario == "d_vision_anthropic") \
            else "/v1/chat/completions"
        body_kind = "vision_anthropic" if scenario == "d_vision_anthropic" else "vision"
        url = f"http://{HOST}:{port}{path}"
        body = str(self.body(contender, body_kind))
        extra = self.hdr(contender, body_kind)
        run_wrk(url, "post.lua", [body], threads=1, conns=1, duration_s=1, extra=extra)
        gate = self.quiet()
        if pid:
            reset_peak(pid)
        with RssSampler(pid) as rss, CpuMeter() as meter:
            result = run_wrk(url, "post.lua", [body], threads=1, conns=1,
                             duration_s=self.plan.vision_s, extra=extra)
        result["other_cpu_cores"] = meter.other_cores
        result["bench_cpu_cores"] = meter.bench_cores
        result["quiet_wait_s"] = gate["waited_s"]
        if pid:
            result["rss_max_mb"] = round(rss.max_kb / 1024, 1)
            result["peak_rss_mb"] = round(tree_kb(pid, "VmHWM") / 1024, 1)
        log(f"  ({scenario}) {contender}: p50 {result['latency_ms']['p50']} ms over "
            f"{result['requests']} requests, peak RSS {result.get('peak_rss_mb')} MB, "
            f"errors {result['error_count']}")
        self.record(scenario, contender, result)

    def image_curve(self, contender: str, port: int, *, translated: bool) -> None:
        """(g): the image cost-growth curve and the translated path (image_scenarios.py)."""
        def measure(url: str, body: str, translated_point: bool) -> dict[str, Any]:
            # Portkey routes by headers: the pass-through points go to the OpenAI-shaped
            # upstream, the translated ones to the Anthropic one, as in (d) and (d').
            extra = self.hdr(contender, "vision_anthropic" if translated_point else "vision")
            run_wrk(url, "post.lua", [body], threads=1, conns=1, duration_s=1, extra=extra)
            return self.measured(lambda: run_wrk(url, "post.lua", [body], threads=1, conns=1,
                                                 duration_s=self.plan.curve_s, extra=extra))

        points = image_scenarios.run(contender, port, WORK, direct_ports=(UP_FAST, UP_ANTHROPIC),
                                     translated=translated, measure=measure)
        self.record(image_scenarios.SCENARIO, contender, points)
        shown = ", ".join(f"{k} {v['latency_ms']['p50']:.1f}" for k, v in points.items()
                          if "latency_ms" in v)
        log(f"  (g) {contender}: p50 ms {shown}")

    def summarize_image_curve(self) -> None:
        images = self.results.get("image_curve_images", {})

        def megabytes(point: image_scenarios.Point) -> float:
            return images.get(f"{point.image_mb}mb_jpeg_bytes", point.image_mb * 1e6) \
                * point.images / 1e6

        curve = self.results["scenarios"].get(image_scenarios.SCENARIO, {})
        self.results["image_curve_summary"] = image_scenarios.summarize(curve, megabytes)

    # ---- blocks

    def run_direct(self) -> None:
        log("direct path (client -> nginx upstream)")
        ports = {"text": UP_FAST, "slow": UP_SLOW, "stream": UP_STREAM, "paced": UP_PACED}
        for kind, port in ports.items():
            self.check("direct", port, kind, "/v1/chat/completions")
        self.check("direct", UP_FAST, "vision", "/v1/chat/completions")
        self.check("direct", UP_ANTHROPIC, "vision_anthropic", "/v1/messages")
        self.throughput("direct", UP_FAST, None, "a_throughput")
        self.paced("direct", UP_SLOW)
        self._direct_streams()
        self.vision("direct", UP_FAST, None, "d_vision_openai")
        self.vision("direct", UP_ANTHROPIC, None, "d_vision_anthropic")
        self.image_curve("direct", 0, translated=True)

    def _direct_streams(self) -> None:
        for scenario, port in (("c_stream_instant", UP_STREAM), ("c_stream_paced", UP_PACED),
                               ("c_stream_single", UP_PACED)):
            kind = "stream" if scenario == "c_stream_instant" else "paced"
            body = self.body("direct", kind).read_bytes()
            concurrency, rounds = self.plan.streams, self.plan.stream_rounds
            if scenario == "c_stream_single":
                concurrency, rounds = 1, self.plan.single_stream_rounds
            result = self.measured(lambda port=port, body=body, n=concurrency, r=rounds:
                                   asyncio.run(_streams(port, body, n, r,
                                                        self.plan.stream_cap_s)))
            log(f"  ({scenario}) direct: TTFB p50 {result['ttfb_ms'].get('p50')} ms, "
                f"total p50 {result['total_ms'].get('p50')} ms, failures {result['failures']}")
            self.record(scenario, "direct", result)

    def start_gateway(self, gw: Gateway, log_name: str) -> tuple[subprocess.Popen[bytes], float]:
        self.headers[gw.name] = gw.headers
        t0 = time.perf_counter()
        proc = self.procs.start(gw.name, gw.argv, gw.env, log_name=log_name)
        ready_s = wait_ready(proc, gw.port, gw.health, started=t0)
        return proc, ready_s

    def run_gateway(self, gw: Gateway) -> None:
        name = gw.name
        log(f"{name}: starting ({' '.join(gw.argv[1:])})")
        proc, ready_s = self.start_gateway(gw, name)
        pid = proc.pid
        try:
            memory: dict[str, Any] = {"pid_tree": len(tree(pid)),
                                      "ready_rss_mb": round(tree_kb(pid, "VmRSS") / 1024, 1),
                                      "first_start_ready_s": round(ready_s, 3)}
            usable = {kind: self.check(name, gw.port, kind, "/v1/chat/completions") is None
                      for kind in ("text", "slow", "stream", "paced", "vision")}
            self.warm(name, gw.port, usable)
            time.sleep(2)
            memory["idle_rss_mb"] = round(tree_kb(pid, "VmRSS") / 1024, 1)
            if usable["text"]:
                self.throughput(name, gw.port, pid, "a_throughput")
                memory["loaded_rss_mb"] = self.results["scenarios"]["a_throughput"][name][
                    "rss_max_mb"]
            if usable["slow"]:
                self.paced(name, gw.port)
            if usable["stream"]:
                self.streams(name, gw.port, "c_stream_instant", pid)
            if usable["paced"]:
                self.streams(name, gw.port, "c_stream_paced", pid)
                self.streams(name, gw.port, "c_stream_single")
            self.summarize_chunks(name)
            if usable["vision"]:
                self.vision(name, gw.port, pid, "d_vision_openai")
            anthropic_ok = name in ("litellm", "portkey") or self.aperture_anthropic
            if anthropic_ok:
                if self.check(name, gw.port, "vision_anthropic", "/v1/chat/completions") is None:
                    self.vision(name, gw.port, pid, "d_vision_anthropic")
            else:
                self.record("d_vision_anthropic", name, {
                    "na": "n/a (Aperture has no anthropic provider yet)",
                    "detail": self.aperture_anthropic_reason})
            if usable["vision"]:
                self.image_curve(name, gw.port, translated=anthropic_ok)
            peaks = [memory.get("loaded_rss_mb", 0.0), tree_kb(pid, "VmHWM") / 1024]
            peaks += [self.results["scenarios"].get(s, {}).get(name, {}).get("peak_rss_mb", 0.0)
                      for s in ("d_vision_openai", "d_vision_anthropic")]
            # VmHWM is reset before each vision run, so the session peak is the largest of
            # the sampled RSS under (a) and the VmHWM values read after the vision runs.
            memory["session_peak_rss_mb"] = round(max(peaks), 1)
            memory["end_rss_mb"] = round(tree_kb(pid, "VmRSS") / 1024, 1)
            self.record("f_memory", name, memory)
            for kind, ok in usable.items():
                if not ok:
                    scenario = {"text": "a_throughput", "slow": "b_paced_50ms",
                                "stream": "c_stream_instant", "paced": "c_stream_paced",
                                "vision": "d_vision_openai"}[kind]
                    self.record(scenario, name, {"na": "check failed: "
                                                 + self.results["checks"][name][kind][:200]})
        finally:
            self.procs.stop(proc)

    def run_floor(self, gw: Gateway) -> None:
        """A bare pass-through proxy (bench/floor_proxy.py): scenario (a) and its RSS only."""
        log(f"{gw.name}: starting")
        try:
            proc, ready_s = self.start_gateway(gw, gw.name)
        except RuntimeError as exc:
            self.record("a_throughput", gw.name, {"na": f"did not start: {exc}"})
            return
        try:
            if self.check(gw.name, gw.port, "text", "/v1/chat/completions") is None:
                self.warm(gw.name, gw.port, {"text": True})
                self.throughput(gw.name, gw.port, proc.pid, "a_throughput")
            else:
                self.record("a_throughput", gw.name, {
                    "na": "check failed: " + self.results["checks"][gw.name]["text"][:200]})
            self.record("f_memory", gw.name, {
                "first_start_ready_s": round(ready_s, 3),
                "idle_rss_mb": round(tree_kb(proc.pid, "VmRSS") / 1024, 1)})
        finally:
            self.procs.stop(proc)

    def warm(self, name: str, port: int, usable: dict[str, bool]) -> None:
        """Lazy imports, JITs and pools: every request kind a few times, then a short load."""
        t0 = time.perf_counter()
        for kind, ok in usable.items():
            if ok:
                data = self.body(name, kind).read_bytes()
                for _ in range(3 if kind == "vision" else 10):
                    http_request(port, "POST", "/v1/chat/completions", data,
                                 extra=self.hdr(name, kind))
        if usable["text"]:
            run_wrk(f"http://{HOST}:{port}/v1/chat/completions", "post.lua",
                    [str(self.body(name, "text"))], threads=1, conns=8,
                    duration_s=self.plan.gateway_warmup_s, extra=self.hdr(name, "text"))
        log(f"  {name}: warmed up in {time.perf_counter() - t0:.1f}s")

    def run_default_logs(self, gw: Gateway, label: str) -> None:
        log(f"{gw.name}: default log level ({label})")
        proc, _ = self.start_gateway(gw, f"{gw.name}-default-logs")
        try:
            if self.check(gw.name, gw.port, "text", "/v1/chat/completions") is None:
                self.warm(gw.name, gw.port, {"text": True})
                self.throughput(gw.name, gw.port, proc.pid, "a_throughput_default_logs")
                self.results["scenarios"]["a_throughput_default_logs"][gw.name]["log_level"] = label
        finally:
            self.procs.stop(proc)

    def cold_starts(self, gw: Gateway) -> None:
        # The gateway's first start in this run (its main block) warmed the page cache and
        # the bytecode: it is reported as the discarded run; these are the counted ones.
        first = self.results["scenarios"].get("f_memory", {}).get(gw.name, {}).get(
            "first_start_ready_s", 0.0) * 1000
        runs: list[float] = []
        rss: list[float] = []
        others: list[float] = []
        for _ in range(self.plan.cold_runs):
            self.quiet()
            with CpuMeter() as meter:
                proc, ready_s = self.start_gateway(gw, f"{gw.name}-cold")
            others.append(meter.other_cores)
            rss.append(round(tree_kb(proc.pid, "VmRSS") / 1024, 1))
            self.procs.stop(proc)
            runs.append(ready_s * 1000)
            time.sleep(0.5)
        result = {"runs_ms": [round(r, 1) for r in runs],
                  "median_ms": round(statistics.median(runs), 1),
                  "min_ms": round(min(runs), 1), "max_ms": round(max(runs), 1),
                  "discarded_first_ms": round(first, 1), "rss_at_ready_mb": rss,
                  "health": gw.health, "other_cpu_cores": max(others)}
        log(f"  (e) {gw.name}: cold start median {result['median_ms']} ms {result['runs_ms']}")
        self.record("e_cold_start", gw.name, result)

    def profile(self, gw: Gateway) -> None:
        if not PY_SPY.exists():
            self.results["profile"] = {"error": "py-spy not installed"}
            return
        log("profile: py-spy on Aperture under scenario (a) load")
        proc, _ = self.start_gateway(gw, "aperture-profile")
        try:
            p = self.plan
            url = f"http://{HOST}:{gw.port}/v1/chat/completions"
            body = str(self.body("aperture", "text"))
            run_wrk(url, "post.lua", [body], threads=p.throughput_threads,
                    conns=p.throughput_conns, duration_s=p.warmup_s)
            load_s = 2 * p.profile_s + 6
            argv = ["wrk", f"-t{p.throughput_threads}", f"-c{p.throughput_conns}", f"-d{load_s}s",
                    "--timeout=10s", "-H", f"Authorization: Bearer {MASTER_KEY}", "-s", str(LUA / "post.lua"), url, "--", body]
            wrk = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                time.sleep(1)
                raw = WORK / "profile.raw.txt"
                svg = WORK / "profile.svg"
                # --gil: only the thread running Python code is sampled, so threads that
                # wait (the SQLite worker thread polling its queue, thread pools) do not
                # pass for hot spots. The flame graph below keeps every non-idle thread.
                rec = subprocess.run([str(PY_SPY), "record", "--pid", str(proc.pid), "-d",
                                      str(p.profile_s), "-r", "200", "--function", "--gil",
                                      "-f", "raw", "-o", str(raw)], capture_output=True, text=True)
                rec2 = subprocess.run([str(PY_SPY), "record", "--pid", str(proc.pid), "-d",
                                       str(p.profile_s), "-r", "200", "-f", "flamegraph",
                                       "-o", str(svg)], capture_output=True, text=True)
            finally:
                out, _ = wrk.communicate(timeout=load_s + 30)
            if rec.returncode != 0 or not raw.exists():
                self.results["profile"] = {"error": rec.stderr[-500:]}
                return
            summary = summarize_profile(raw)
            summary["svg"] = str(svg.relative_to(ROOT)) if rec2.returncode == 0 else None
            summary["raw"] = str(raw.relative_to(ROOT))
            line = next((x for x in out.decode().splitlines() if x.startswith("BENCH_JSON ")), "")
            if line:
                data = json.loads(line.removeprefix("BENCH_JSON "))
                summary["rps_while_profiling"] = round(
                    data["requests"] / (data["duration_us"] / 1e6), 1)
            self.results["profile"] = summary
        finally:
            self.procs.stop(proc)

    # ---- whole run

    def run(self) -> None:
        started = time.time()
        ticks_before = _all_ticks()
        self.results["meta"] = machine_meta(self.plan)
        self.prepare()
        self.results["meta"]["aperture_anthropic"] = (
            "available" if self.aperture_anthropic else self.aperture_anthropic_reason)
        self.run_direct()
        if self.plan.floors:
            if (FLOORS_VENV / "bin" / "python").exists():
                for server, client in FLOORS:
                    self.run_floor(floor_gateway(server, client))
            else:
                self.results["notes"].append(f"floors not run: no {FLOORS_VENV}")
        ap = aperture_gateway(self.aperture_yaml, "warning")
        self.run_gateway(ap)
        if self.plan.default_logs:
            self.run_default_logs(aperture_gateway(self.aperture_yaml, "info"),
                                  "info (the CLI default)")
        pk = portkey_gateway()
        if self.plan.portkey:
            self.run_gateway(pk)
        lt = litellm_gateway(self.litellm_yaml, "WARNING")
        if self.plan.litellm:
            self.run_gateway(lt)
            if self.plan.default_logs:
                self.run_default_logs(litellm_gateway(self.litellm_yaml, None),
                                      "default (uvicorn access log on)")
        self.summarize_image_curve()
        log("cold starts")
        self.cold_starts(ap)
        if self.plan.portkey:
            self.cold_starts(pk)
        if self.plan.litellm:
            self.cold_starts(lt)
        if self.plan.profile:
            self.profile(ap)
        self.results["meta"]["nginx_rss_mb"] = round(tree_kb(self.nginx.pid, "VmRSS") / 1024, 1)
        self.results["meta"]["wall_s"] = round(time.time() - started, 1)
        self.results["meta"]["quiet_wait_total_s"] = round(self.quiet_spent, 1)
        self.results["meta"]["other_processes"] = _other_processes(ticks_before,
                                                                   time.time() - started)


    def run_workers(self, counts: list[int]) -> None:
        """Scenario (a) only: the direct path, then Aperture with each worker count in turn
        (a count given twice is measured twice, interleaved, to expose drift)."""
        started = time.time()
        # Worker counts differ by less than outside load can take away on 2 CPUs: wait
        # longer for a quiet machine than the full run does.
        self.plan.quiet_max_wait_s = max(self.plan.quiet_max_wait_s, 120)
        self.plan.quiet_budget_s = max(self.plan.quiet_budget_s, 900)
        self.results["meta"] = machine_meta(self.plan)
        self.results["meta"]["workers"] = counts
        self.prepare()
        self.throughput("direct", UP_FAST, None, "a_throughput")
        runs: list[dict[str, Any]] = []
        for n in counts:
            gw = aperture_gateway(self.aperture_yaml, "warning", workers=n)
            log(f"aperture --workers {n}: starting")
            proc, ready_s = self.start_gateway(gw, f"aperture-workers-{n}")
            try:
                if self.check("aperture", gw.port, "text", "/v1/chat/completions"):
                    raise RuntimeError(f"aperture --workers {n} does not answer")
                self.warm("aperture", gw.port, {"text": True})
                self.throughput("aperture", gw.port, proc.pid, "a_throughput")
                result = self.results["scenarios"]["a_throughput"].pop("aperture")
                result.update(workers=n, processes=len(tree(proc.pid)),
                              ready_s=round(ready_s, 3))
                runs.append(result)
            finally:
                self.procs.stop(proc)
        self.results["workers_runs"] = runs
        self.results["meta"]["wall_s"] = round(time.time() - started, 1)


def workers_markdown(results: dict[str, Any]) -> str:
    """``workers.md``: scenario (a) by worker count, one row per run."""
    meta = results["meta"]
    direct = results["scenarios"]["a_throughput"]["direct"]
    lines = [
        "# Aperture with several workers: scenario (a) throughput",
        "",
        f"{meta['date']}, {meta['nproc']} CPUs ({meta['cpu']}), {meta['os']}, "
        f"Python {meta['python']}, {meta['aperture']} at {meta['aperture_commit']} (working "
        "tree as it was).",
        "",
        f"Command: `bench/run --workers {','.join(map(str, meta['workers']))}"
        + (" --quick` (a smoke run, not for publishing)" if meta.get("quick") else "`") + ". "
        "Load: the harness's scenario (a), small text chat completions to an instant nginx "
        f"upstream, `wrk -t{meta['plan']['throughput_threads']} "
        f"-c{meta['plan']['throughput_conns']} -d{meta['plan']['throughput_s']}s` after "
        "warm-ups; Aperture with its default SQLite storage (audit on) and `--log-level "
        "warning`.",
        "",
        f"**This machine has {meta['nproc']} CPUs**, shared by wrk, nginx and every "
        "Aperture worker: more workers than CPUs left over cannot add throughput here, and "
        "`other CPUs` is what processes outside the bench used during the measurement.",
        "",
        "| workers | processes | req/s | p50 ms | p99 ms | errors | RSS max MB | other CPUs |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in results.get("workers_runs", []):
        lat = run["latency_ms"]
        lines.append(
            f"| {run['workers']} | {run['processes']} | {run['rps']:.0f} | {lat['p50']:.2f} | "
            f"{lat['p99']:.2f} | {run['error_count']} | {run.get('rss_max_mb', '')} | "
            f"{run['other_cpu_cores']:.2f} |")
    lines += [
        "",
        f"The direct path (wrk to nginx, no gateway) did {direct['rps']:.0f} req/s, p50 "
        f"{direct['latency_ms']['p50']:.2f} ms, in the same run.",
        "",
    ]
    return "\n".join(lines)


def _all_ticks() -> dict[int, tuple[int, str]]:
    out: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            out[int(entry)] = (int(fields[11]) + int(fields[12]),
                               cmd.decode(errors="replace").strip()[:120])
    return out


def _other_processes(before: dict[int, tuple[int, str]], seconds: float) -> list[dict[str, Any]]:
    """Processes outside the bench that used the most CPU during the run (still alive)."""
    ours = set(tree(os.getpid()))
    rows = []
    for pid, (ticks, cmd) in _all_ticks().items():
        if pid in ours or not cmd:
            continue
        used = ticks - before.get(pid, (0, ""))[0]
        if used > 0:
            rows.append({"pid": pid, "cpu_s": round(used / HZ, 1), "cmd": cmd})
    rows.sort(key=lambda r: -r["cpu_s"])
    return [r for r in rows[:6] if r["cpu_s"] >= 1.0]


# --------------------------------------------------------------------------- profile


def summarize_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    self_counts: dict[str, int] = {}
    incl_counts: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + n
        for frame in set(frames):
            incl_counts[frame] = incl_counts.get(frame, 0) + n

    def rows(counts: dict[str, int]) -> list[dict[str, Any]]:
        ordered = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[:top]
        return [{"frame": _short_frame(k), "samples": v,
                 "share_pct": round(100 * v / total, 1) if total else 0.0} for k, v in ordered]

    by_package: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            by_package[_package(stack.split(";")[-1])] = by_package.get(
                _package(stack.split(";")[-1]), 0) + int(count)
    own = {k: v for k, v in incl_counts.items()
           if "aperture/" in k.partition(" (")[2] and not k.startswith(("main ", "_serve "))}
    return {
        "samples": total,
        "self": rows(self_counts),
        "inclusive": rows(incl_counts),
        "aperture_inclusive": rows(own),
        "self_by_package": [{"package": k, "share_pct": round(100 * v / total, 1)}
                            for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])[:12]],
    }


def _short_frame(frame: str) -> str:
    # "func (/abs/path/site-packages/pkg/mod.py)" -> "func (pkg/mod.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name


def _package(frame: str) -> str:
    short = _short_frame(frame)
    where = short.partition(" (")[2].rstrip(")").split(":", 1)[0]
    if not where:
        return "(native/unknown)"
    if "/" in where:
        return where.split("/", 1)[0]
    return f"stdlib {where.removesuffix('.py')}" if where.endswith(".py") else where


# --------------------------------------------------------------------------- metadata


def _cmd(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return (out.stdout or out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _git_head() -> str:
    # Read the ref files directly (the bench runs no git commands).
    try:
        head = (ROOT / ".git" / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            ref_file = ROOT / ".git" / ref
            if ref_file.exists():
                return f"{ref_file.read_text().strip()[:12]} ({ref.rsplit('/', 1)[-1]})"
            packed = ROOT / ".git" / "packed-refs"
            for line in packed.read_text().splitlines() if packed.exists() else []:
                if line.endswith(" " + ref):
                    return f"{line[:12]} ({ref.rsplit('/', 1)[-1]})"
        return head[:12]
    except OSError:
        return "unknown"


def machine_meta(plan: Plan) -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    mem_kb = status_like("/proc/meminfo", "MemTotal")
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "aperture": _cmd([str(APERTURE_BIN), "--version"]),
        "aperture_commit": _git_head(),
        "litellm": _cmd([str(LITELLM_VENV / "bin" / "python"), "-c",
                         "import importlib.metadata as m; print('litellm', m.version('litellm'),"
                         "'| uvicorn', m.version('uvicorn'), '| uvloop', m.version('uvloop'))"]),
        "portkey": _portkey_version(),
        "floors": _cmd([str(FLOORS_VENV / "bin" / "python"), "-c",
                        "import importlib.metadata as m; print(', '.join(f'{p} ' + m.version(p)"
                        " for p in ('uvicorn', 'httptools', 'granian', 'aiohttp', 'pyreqwest')))"]
                       ) if (FLOORS_VENV / "bin" / "python").exists() else "missing",
        "wrk": _cmd(["wrk", "-v"]).splitlines()[0] if shutil.which("wrk") else "missing",
        "nginx": _cmd(["nginx", "-v"]),
        "plan": plan.__dict__,
        "upstream": {
            "server": "nginx (1 worker) with the echo module; canned bodies, loopback",
            "ports": {"fast": UP_FAST, "slow_50ms": UP_SLOW, "stream_instant": UP_STREAM,
                      "stream_paced": UP_PACED, "anthropic": UP_ANTHROPIC},
            "delay_s": UPSTREAM_DELAY_S, "paced_chunks": PACED_CHUNKS, "paced_gap_s": PACED_GAP_S,
        },
    }


def _portkey_version() -> str:
    modules = BENCH / ".node-portkey" / "node_modules"

    def version(package: str) -> str:
        try:
            return str(json.loads((modules / package / "package.json").read_text())["version"])
        except (OSError, ValueError, KeyError):
            return "missing"

    return (f"@portkey-ai/gateway {version('@portkey-ai/gateway')} (@hono/node-server "
            f"{version('@hono/node-server')}) on " + _cmd(["node", "--version"]))


def status_like(path: str, key: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (not for publishing)")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM proxy")
    parser.add_argument("--no-portkey", action="store_true", help="skip the Portkey gateway")
    parser.add_argument("--no-floors", action="store_true",
                        help="skip the bare pass-through floors (bench/floor_proxy.py)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--no-default-logs", action="store_true",
                        help="skip the (a) re-run at each gateway's default log level")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--workers", help="only scenario (a), for Aperture with each of these "
                        "worker counts (e.g. 1,2); writes workers.json and workers.md")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan()
    plan.litellm = not args.no_litellm
    plan.portkey = not args.no_portkey
    plan.floors = not args.no_floors
    plan.profile = not args.no_profile
    plan.default_logs = not args.no_default_logs

    def on_signal(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    bench = Bench(plan)
    if args.workers:
        return _main_workers(bench, [int(n) for n in args.workers.split(",")], args)
    try:
        bench.run()
    finally:
        bench.procs.stop_all()
        args.out.mkdir(parents=True, exist_ok=True)
        bench.results["meta"] = bench.results.get("meta", {})
        bench.results["meta"]["quick"] = args.quick
        (args.out / "results.json").write_text(json.dumps(bench.results, indent=2) + "\n")
        log(f"wrote {args.out / 'results.json'}")
    import report

    report.main([str(args.out / "results.json"), "--out", str(args.out)])
    return 0


def _main_workers(bench: Bench, counts: list[int], args: argparse.Namespace) -> int:
    try:
        bench.run_workers(counts)
    finally:
        bench.procs.stop_all()
    bench.results["meta"]["quick"] = args.quick
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "workers.json").write_text(json.dumps(bench.results, indent=2) + "\n")
    (args.out / "workers.md").write_text(workers_markdown(bench.results))
    log(f"wrote {args.out / 'workers.json'} and {args.out / 'workers.md'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    sys.exit(main())
