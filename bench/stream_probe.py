"""Scenario (c) of the harness alone, on Aperture: 100 concurrent streams, quickly.

    .venv/bin/python bench/stream_probe.py --floor            # the bare uvicorn + aiohttp relay

    .venv/bin/python bench/stream_probe.py                    # instant + paced, 3 rounds each
    .venv/bin/python bench/stream_probe.py --rounds 6 --only instant
    .venv/bin/python bench/stream_probe.py --src /tmp/base/src   # another tree's aperture
    .venv/bin/python bench/stream_probe.py --hold 60           # keep both up (to attach py-spy)

It starts its own nginx upstream (the harness's canned SSE streams) and one Aperture process,
configured as the harness configures them, on ports of its own (185xx, so it can run beside
the harness and the other probes), and measures with the harness's own stream client
(``harness._streams``): each round opens ``--streams`` streams at once. Per scenario it
prints, for the direct path and then Aperture, TTFB and total p50/p99, and Aperture's CPU
time per stream and per chunk (user + system, every thread, from ``/proc``), which a busy
machine disturbs least.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402  (after the path)

PORTS = {
    "UP_FAST": 18590,
    "UP_SLOW": 18591,
    "UP_STREAM": 18592,
    "UP_PACED": 18593,
    "UP_ANTHROPIC": 18594,
    "APERTURE_PORT": 18600,
}
ADMIN_PORT = 18601


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--only", choices=("instant", "paced"), default=None)
    parser.add_argument("--src", type=Path, default=None, help="an aperture src/ tree to run")
    parser.add_argument("--hold", type=float, default=0.0, help="seconds to keep running after")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="measure the bare uvicorn + aiohttp relay (floor_proxy.py) instead of Aperture",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="record py-spy collapsed stacks of Aperture to <prefix>-<kind>.txt",
    )
    args = parser.parse_args()

    for name, port in PORTS.items():
        setattr(harness, name, port)
    work = harness.BENCH / "work" / "stream-probe"
    harness.WORK = work
    harness.PIDS_FILE = work / "pids"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    for leftover in work.glob("aperture.db*"):
        leftover.unlink()
    procs = harness.Processes()
    try:
        conf = work / "nginx.conf"
        conf.write_text(harness.nginx_conf())
        procs.start("nginx", ["nginx", "-c", str(conf), "-p", str(work / "nginx")])
        for port in (PORTS["UP_STREAM"], PORTS["UP_PACED"]):
            wait_port(port)
        config = harness.aperture_config(with_anthropic=False)
        config["server"]["admin_port"] = ADMIN_PORT
        yaml_path = work / "aperture.json"
        yaml_path.write_text(json.dumps(config))  # JSON is YAML
        proc = None
        name = "floor" if args.floor else "aperture"
        if not args.floor:
            gw = harness.aperture_gateway(yaml_path, args.log_level)
            env = {"PYTHONPATH": str(args.src.resolve())} if args.src else None
            proc = start(procs, gw.name, gw.argv, gw.port, gw.health, env)
        scenarios = [
            ("instant", PORTS["UP_STREAM"], "bench-stream"),
            ("paced", PORTS["UP_PACED"], "bench-paced"),
        ]
        for kind, up_port, model in scenarios:
            if args.only and kind != args.only:
                continue
            if args.floor:
                # Its upstream is fixed: one floor per scenario.
                if proc is not None:
                    procs.stop(proc)
                gw = harness.floor_gateway("uvicorn", "aiohttp")
                gw.argv[gw.argv.index("--port") + 1] = str(PORTS["APERTURE_PORT"])
                gw.argv[-1] = f"http://{harness.HOST}:{up_port}"
                proc = start(procs, gw.name, gw.argv, PORTS["APERTURE_PORT"], gw.health, None)
            assert proc is not None
            direct_body = harness.chat_body(harness.UPSTREAM_MODEL, stream=True)
            body = harness.chat_body(model, stream=True)
            for _ in range(20):  # warm: lazy imports, pools
                harness.http_request(PORTS["APERTURE_PORT"], "POST", "/v1/chat/completions", body)
            direct = asyncio.run(harness._streams(up_port, direct_body, args.streams, args.rounds))
            spy = None
            if args.profile:
                out = Path(f"{args.profile}-{kind}.txt").resolve()
                spy = subprocess.Popen(
                    [
                        str(harness.PY_SPY),
                        "record",
                        "--pid",
                        str(proc.pid),
                        "-r",
                        "250",
                        "-f",
                        "raw",
                        "-o",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1.0)
            cpu0 = harness.tree_cpu_s(proc.pid)
            ours = asyncio.run(
                harness._streams(PORTS["APERTURE_PORT"], body, args.streams, args.rounds)
            )
            cpu = harness.tree_cpu_s(proc.pid) - cpu0
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=30)
            if not ours["ttfb_ms"] or not direct["ttfb_ms"]:
                print(
                    f"({kind}) no samples: {direct['failure_examples']} {ours['failure_examples']}"
                )
                continue
            streams = ours["streams_served"]
            chunks = len(harness._sse_events())
            print(
                f"({kind}) direct   TTFB p50 {direct['ttfb_ms']['p50']:7.1f} p99 "
                f"{direct['ttfb_ms']['p99']:7.1f}  total p50 {direct['total_ms']['p50']:7.1f}"
                f"  failures {direct['failures']}"
            )
            print(
                f"({kind}) {name:8} TTFB p50 {ours['ttfb_ms']['p50']:7.1f} p99 "
                f"{ours['ttfb_ms']['p99']:7.1f}  total p50 {ours['total_ms']['p50']:7.1f}"
                f"  failures {ours['failures']} {ours['failure_examples'][:1]}"
            )
            print(
                f"({kind}) {name:8} CPU {1000 * cpu / streams:.3f} ms/stream, "
                f"{1000 * cpu / streams / chunks:.4f} ms/event ({chunks} events)  added "
                f"after-first p50 "
                f"{ours['after_first_ms']['p50'] - direct['after_first_ms']['p50']:.1f} ms, "
                f"TTFB p50 {ours['ttfb_ms']['p50'] - direct['ttfb_ms']['p50']:.1f} ms",
                flush=True,
            )
        if args.hold:
            assert proc is not None
            print(
                f"holding {args.hold}s: pid {proc.pid}, port {PORTS['APERTURE_PORT']}", flush=True
            )
            time.sleep(args.hold)
    finally:
        procs.stop_all()
    return 0


def start(
    procs: harness.Processes,
    name: str,
    argv: list[str],
    port: int,
    health: str,
    env: dict[str, str] | None,
) -> subprocess.Popen[bytes]:
    t0 = time.perf_counter()
    proc = procs.start(name, argv, env)
    harness.wait_ready(proc, port, health, started=t0)
    return proc


def wait_port(port: int) -> None:
    for _ in range(500):
        if not harness.port_free(port):
            return
        time.sleep(0.01)
    raise RuntimeError(f"upstream :{port} did not open")


if __name__ == "__main__":
    os.chdir(harness.BENCH)
    raise SystemExit(main())
