"""Aperture's added latency, quickly: scenarios (b) and (d) of the harness, nothing else.

    .venv/bin/python bench/latency_probe.py                  # 3 rounds, about 2 minutes
    .venv/bin/python bench/latency_probe.py --rounds 5 --profile bench/work/probe/prof

The full harness (``bench/run``) takes ten minutes and measures LiteLLM too; this probe is
for the edit-measure loop on Aperture's own latency. It starts its own nginx upstream and
one Aperture process on ports of its own (so it can run beside the harness), configured as
the harness configures them, and measures with the harness's wrk scripts:

- (b) small text requests at a fixed 100 req/s to an upstream that answers after 50 ms,
  ``wrk -t1 -c16 -s lua/paced.lua``;
- (d) a 4 MB noise JPEG as a data URI passed through to the instant upstream, sequential,
  ``wrk -t1 -c1 -s lua/post.lua``.

Each round measures the direct path and then Aperture (alternating which goes first), so a
neighbour's load drifts over both alike; the added latency is Aperture's percentile minus
the direct path's in the same round, and the summary is the median over rounds. It also
prints Aperture's CPU time per request (from ``/proc``) and its own account of its overhead
("own": ``aperture_gateway_overhead_seconds``, total time minus time waiting on providers),
which a busy machine disturbs less than latency, and its peak RSS. ``--profile`` then records
py-spy collapsed stacks of Aperture under each load (``<prefix>-b.txt``, ``<prefix>-d.txt``)
and prints the hottest frames.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import json
import os
import random
import signal
import statistics
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work" / "probe"
LUA = BENCH / "lua"
APERTURE_BIN = Path(os.environ.get("APERTURE_BIN", ROOT / ".venv" / "bin" / "aperture"))
PY_SPY = BENCH / ".venv-tools" / "bin" / "py-spy"

HOST = "127.0.0.1"
# Ports apart from the harness's (180xx, 181xx), so both can run at once; two probes at once
# (two checkouts) need different BENCH_PORT_OFFSETs, or the second would measure the first's.
PORT_OFFSET = int(os.environ.get("BENCH_PORT_OFFSET", "0"))
UP_FAST, UP_SLOW, APERTURE_PORT, ADMIN_PORT = (p + PORT_OFFSET for p in (18390, 18391, 18400, 18401))
KEY = "sk-bench-probe-0123456789abcdef"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1763683200,
        "model": "bench-upstream",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": "Hello!", "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": 14, "completion_tokens": 9, "total_tokens": 23},
    },
    separators=(",", ":"),
)


def require_free(*ports: int) -> None:
    """Stop before measuring anything if another process (another probe) holds a port."""
    for port in ports:
        with socket.socket() as probe_socket:
            if probe_socket.connect_ex((HOST, port)) == 0:
                raise SystemExit(
                    f"port {port} is taken (another bench run?); set BENCH_PORT_OFFSET=N "
                    "to move this run's ports by N"
                )


def nginx_conf() -> str:
    require_free(UP_FAST, UP_SLOW)
    (WORK / "nginx").mkdir(parents=True, exist_ok=True)

    def server(port: int, delay: str) -> str:
        # echo_read_request_body: answer only once the whole (5 MB) upload has arrived.
        return (
            f"  server {{ listen {HOST}:{port}; location = /v1/chat/completions {{\n"
            f"    default_type application/json; echo_read_request_body; {delay}\n"
            f"    echo -n '{COMPLETION}'; }} }}\n"
        )

    return (
        "load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;\n"
        f"daemon off; worker_processes 1; user root; pid {WORK}/nginx/nginx.pid;\n"
        f"error_log {WORK}/nginx/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; client_body_temp_path {WORK}/nginx;\n"
        "  client_max_body_size 128m; client_body_buffer_size 16m;\n"
        "  keepalive_requests 10000000; keepalive_timeout 300s; tcp_nodelay on;\n"
        + server(UP_FAST, "")
        + server(UP_SLOW, "echo_sleep 0.05;")
        + "}\n"
    )


def aperture_config() -> str:
    """The harness's Aperture configuration, trimmed to the two upstreams used here."""

    def pair(model: str, provider: str, port: int) -> tuple[dict[str, Any], dict[str, Any]]:
        base = f"http://{HOST}:{port}/v1"
        return (
            {"name": provider, "kind": "openai", "base_url": base, "api_key": "bench"},
            {
                "name": model,
                "provider": provider,
                "upstream_model": "bench-upstream",
                "capabilities": ["vision"],
            },
        )

    (p1, m1), (p2, m2) = pair("bench-text", "up", UP_FAST), pair("bench-slow", "up-slow", UP_SLOW)
    return json.dumps(
        {  # JSON is YAML
            "server": {
                "host": HOST,
                "port": APERTURE_PORT,
                "admin_port": ADMIN_PORT,
                "max_body_bytes": 64 * 1024 * 1024,
            },
            "auth": {"master_key": KEY},
            "providers": [p1, p2],
            "models": [m1, m2],
        },
        indent=1,
    )


def jpeg_b64() -> str:
    """The harness's image: 4 MB of JPEG noise (incompressible), same seed, same size."""
    path = WORK / "vision.jpg"
    if not path.exists():
        from PIL import Image

        rng, side = random.Random(20261120), 1200
        for _ in range(8):
            img = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
            img.save(path, "JPEG", quality=90)
            size = path.stat().st_size
            if abs(size - 4_000_000) / 4_000_000 < 0.03:
                break
            side = max(64, int(side * (4_000_000 / size) ** 0.5))
    return base64.b64encode(path.read_bytes()).decode()


def write_bodies() -> dict[tuple[str, str], Path]:
    image = jpeg_b64()
    bodies = {}
    for contender, text_model, slow_model in (
        ("direct", "bench-upstream", "bench-upstream"),
        ("aperture", "bench-text", "bench-slow"),
    ):
        for kind, model, content in (
            ("slow", slow_model, "Say hello in one short sentence."),
            (
                "vision",
                text_model,
                [
                    {"type": "text", "text": "Describe this image in one sentence."},
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image}"}},
                ],
            ),
        ):
            body = {
                "model": model,
                "messages": [{"role": "user", "content": content}],
                "max_tokens": 32,
            }
            path = WORK / f"{contender}-{kind}.json"
            path.write_text(json.dumps(body, separators=(",", ":")))
            bodies[(contender, kind)] = path
    return bodies


# --------------------------------------------------------------------------- processes


@contextlib.contextmanager
def process(argv: list[str], log_name: str) -> Iterator[subprocess.Popen[bytes]]:
    with (WORK / log_name).open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=WORK,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(3000):
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode}; see {WORK}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
            return
        time.sleep(0.01)
    raise SystemExit(f"{url} not ready")


def post(port: int, body: Path) -> int:
    request = urllib.request.Request(
        f"http://{HOST}:{port}/v1/chat/completions",
        data=body.read_bytes(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def overhead_sum_count() -> tuple[float, float]:
    """Aperture's own account of its overhead (total time minus time waiting on providers)."""
    with urllib.request.urlopen(f"http://{HOST}:{APERTURE_PORT}/metrics", timeout=10) as r:
        text = r.read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("aperture_gateway_overhead_seconds_") and "chat/completions" in line:
            name, value = line.split("{", 1)[0], line.rsplit(" ", 1)[1]
            found[name.rsplit("_", 1)[1]] = float(value)
    return found.get("sum", 0.0), found.get("count", 0.0)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def wrk(port: int, script: str, args: list[str], conns: int, seconds: int) -> dict[str, Any]:
    argv = [
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{seconds}s",
        "--timeout=10s",
        "-H",
        f"Authorization: Bearer {KEY}",
        "-s",
        str(LUA / script),
        f"http://{HOST}:{port}/v1/chat/completions",
        "--",
        *args,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH_JSON "))
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(raw["errors"].values())
    if errors:
        print(f"  warning: {errors} errors {raw['errors']}", file=sys.stderr)
    return {
        "requests": raw["requests"],
        "p50": raw["latency_us"]["p50"] / 1000,
        "p99": raw["latency_us"]["p99"] / 1000,
    }


# --------------------------------------------------------------------------- measuring


SCENARIOS = {
    # name: (body kind, upstream port for direct, wrk script, extra args, connections)
    "b": ("slow", UP_SLOW, "paced.lua", ["100"], 16),
    "d": ("vision", UP_FAST, "post.lua", [], 1),
}


def measure(
    scenario: str,
    contender: str,
    bodies: dict[tuple[str, str], Path],
    seconds: int,
    gateway_pid: int,
) -> dict[str, Any]:
    kind, direct_port, script, extra, conns = SCENARIOS[scenario]
    port = direct_port if contender == "direct" else APERTURE_PORT
    if contender == "aperture":
        sum_before, count_before = overhead_sum_count()
        Path(f"/proc/{gateway_pid}/clear_refs").write_text("5")  # resets VmHWM
    before = cpu_seconds(gateway_pid)
    result = wrk(port, script, [str(bodies[(contender, kind)]), *extra], conns, seconds)
    if contender == "aperture":
        result["cpu_ms"] = 1000 * (cpu_seconds(gateway_pid) - before) / result["requests"]
        sum_after, count_after = overhead_sum_count()
        result["own_ms"] = 1000 * (sum_after - sum_before) / max(1.0, count_after - count_before)
        status = Path(f"/proc/{gateway_pid}/status").read_text()
        result["peak_mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024
    return result


def profile(prefix: Path, pid: int, bodies: dict[tuple[str, str], Path], seconds: int) -> None:
    if not PY_SPY.exists():
        print(f"no py-spy at {PY_SPY}: run bench/run once, or pip install py-spy there")
        return
    for scenario in SCENARIOS:
        out = prefix.with_name(f"{prefix.name}-{scenario}.txt")
        spy = subprocess.Popen(
            [
                str(PY_SPY),
                "record",
                "--pid",
                str(pid),
                "-r",
                "500",
                "--gil",
                "-d",
                str(seconds),
                "-f",
                "raw",
                "-o",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
        )
        measure(scenario, "aperture", bodies, seconds + 2, pid)
        spy.wait()
        print(f"\nprofile ({scenario}): {out}")
        print_hot(out)


def print_hot(path: Path, top: int = 25) -> None:
    """Self and inclusive shares of the non-idle samples, by function."""
    own: collections.Counter[str] = collections.Counter()
    anywhere: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [
            f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in stack.split(";")[1:]
        ]  # [0] is the thread
        if not frames or frames[-1].startswith(("Runner.run ", "select ", "_run_once ")):
            continue  # the loop waiting for I/O
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            anywhere[frame] += int(count)
    print(f"{total} busy samples; self | inclusive, % of busy")
    for (a, n), (b, m) in zip(own.most_common(top), anywhere.most_common(top), strict=False):
        print(f"  {100 * n / total:5.1f} {a[:70]:70} | {100 * m / total:5.1f} {b[:70]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8, help="per measurement")
    parser.add_argument("--profile", type=Path, help="record py-spy stacks to PREFIX-{b,d}.txt")
    parser.add_argument("--only", choices=sorted(SCENARIOS), help="one scenario")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    for leftover in WORK.glob("aperture.db*"):
        leftover.unlink()
    bodies = write_bodies()
    (WORK / "nginx.conf").write_text(nginx_conf())
    (WORK / "aperture.yaml").write_text(aperture_config())
    scenarios = [args.only] if args.only else list(SCENARIOS)
    nginx = ["nginx", "-c", str(WORK / "nginx.conf"), "-p", str(WORK / "nginx")]
    serve = [
        str(APERTURE_BIN),
        "serve",
        "--config",
        str(WORK / "aperture.yaml"),
        "--log-level",
        "warning",
    ]
    with process(nginx, "nginx.log") as up, process(serve, "aperture.log") as gw:
        time.sleep(0.3)
        if up.poll() is not None:
            raise SystemExit(f"nginx exited; see {WORK}/nginx/error.log")
        wait_ready(f"http://{HOST}:{APERTURE_PORT}/healthz", gw)
        for _ in range(20):  # warm-up: imports, pools, the first audit writes
            for contender, port in (("direct", UP_FAST), ("aperture", APERTURE_PORT)):
                post(port, bodies[(contender, "vision")])
        for scenario in scenarios:
            measure(scenario, "aperture", bodies, 2, gw.pid)
        rows: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for n in range(args.rounds):
            for scenario in scenarios:
                order = ("direct", "aperture") if n % 2 == 0 else ("aperture", "direct")
                got = {c: measure(scenario, c, bodies, args.seconds, gw.pid) for c in order}
                d, a = got["direct"], got["aperture"]
                row = {
                    "p50": a["p50"] - d["p50"],
                    "p99": a["p99"] - d["p99"],
                    "direct_p50": d["p50"],
                    "aperture_p50": a["p50"],
                    "cpu_ms": a["cpu_ms"],
                    "own_ms": a["own_ms"],
                    "peak_mb": a["peak_mb"],
                }
                rows[scenario].append(row)
                print(
                    f"round {n + 1} ({scenario}): added p50 {row['p50']:.2f} ms, p99 "
                    f"{row['p99']:.2f} ms (direct p50 {d['p50']:.2f}, Aperture p50 "
                    f"{a['p50']:.2f}); Aperture CPU {a['cpu_ms']:.2f} ms/request, own "
                    f"{a['own_ms']:.2f} ms, peak RSS {a['peak_mb']:.0f} MB",
                    flush=True,
                )
        print(
            "\nmedian over rounds (ms)   added p50  added p99  direct p50  CPU/request  own"
            "  peak RSS (MB)"
        )
        for scenario, runs in rows.items():
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(
                f"  ({scenario}) {SCENARIOS[scenario][0]:18} {med['p50']:9.2f} {med['p99']:10.2f}"
                f" {med['direct_p50']:11.2f} {med['cpu_ms']:12.2f} {med['own_ms']:5.2f}"
                f" {med['peak_mb']:8.0f}"
            )
        if args.profile:
            args.profile.parent.mkdir(parents=True, exist_ok=True)
            profile(args.profile, gw.pid, bodies, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
