"""The provider client alone: CPU per call of ``aperture.upstream.UpstreamClient`` per tree.

    .venv/bin/python bench/client_floor.py /tmp/base/src src --rounds 3

Each source tree's ``UpstreamClient`` (``PYTHONPATH`` puts the tree first, so a tree may
carry another HTTP client behind the same interface) runs in a process of its own on uvloop
against one nginx on loopback, with no gateway around it, for four loads: a small
completion at 8 concurrent calls; a 4 MB upload at 1; a stream of 101 SSE events that
arrive at once (the client may read them as one chunk) and the same events 2 ms apart (one
chunk each, as a model streams), at 8 and 16. The process's CPU (every thread, so a
Rust client's own runtime counts) is divided by the calls; the rounds alternate the trees'
order and the summary is the median. Issue 19's client choice was measured with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import latency_probe as lp

PORT = 18370 + lp.PORT_OFFSET
EVENT = (
    'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m",'
    '"choices":[{"index":0,"delta":{"content":"tok "}}]}\\n\\n'
)
EVENTS = 101  # 100 deltas and [DONE]
STREAM_BYTES = 100 * (len(EVENT) - 2) + len("data: [DONE]\n\n")
# name: (path, body bytes, calls, concurrency)
LOADS = {
    "small": ("/v1/chat/completions", 0, 3000, 8),
    "image-4mb": ("/v1/chat/completions", 4 * 1024 * 1024, 150, 1),
    "stream-burst": ("/stream", 0, 1000, 8),
    "stream-paced": ("/paced", 0, 200, 16),
}


def nginx_conf(work: Path) -> str:
    def stream(pace: str) -> str:
        lines = "".join(f"      echo -n '{EVENT}';{pace}\n" for _ in range(EVENTS - 1))
        return lines + f"      echo -n 'data: [DONE]\\n\\n';{pace}\n"

    return (
        "load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;\n"
        f"daemon off; worker_processes 1; user root; pid {work}/nginx.pid;\n"
        f"error_log {work}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ access_log off; client_body_temp_path {work};\n"
        "  client_max_body_size 128m; client_body_buffer_size 16m;\n"
        "  keepalive_requests 10000000; keepalive_timeout 300s; tcp_nodelay on;\n"
        f"  server {{ listen {lp.HOST}:{PORT};\n"
        "    location = /v1/chat/completions { default_type application/json;\n"
        f"      echo_read_request_body; echo -n '{lp.COMPLETION}'; }}\n"
        "    location = /stream { default_type text/event-stream; echo_read_request_body;\n"
        + stream("")
        + "    }\n"
        "    location = /paced { default_type text/event-stream; echo_read_request_body;\n"
        + stream(" echo_flush; echo_sleep 0.002;")
        + "    }\n  }\n}\n"
    )


def child(load: str) -> None:
    """One tree, one load: prints the CPU per call as JSON."""
    import uvloop

    from aperture.upstream import Timeouts, UpstreamClient, UpstreamRequest

    path, size, calls, conc = LOADS[load]
    body = b'{"model":"m","messages":[{"role":"user","content":"' + b"A" * size + b'"}]}'
    request = UpstreamRequest(
        f"http://{lp.HOST}:{PORT}{path}",
        {"content-type": "application/json", "authorization": "Bearer k"},
        body,
    )
    timeouts = Timeouts(connect_s=5, total_s=60, idle_s=30)
    chunks = [0]

    async def one(client: UpstreamClient) -> None:
        if path == "/v1/chat/completions":
            answer = await client.send(request, timeouts, provider="p")
            assert answer.status == 200, answer.status
            return
        stream = await client.open_stream(request, timeouts, provider="p")
        got = 0
        try:
            async for chunk in stream.chunks():
                got += len(chunk)
                chunks[0] += 1
        finally:
            await stream.aclose()
        assert got == STREAM_BYTES, got

    async def run() -> dict[str, float]:
        client = UpstreamClient.create()
        for _ in range(10):  # the pool's connections, the first imports
            await one(client)
        chunks[0] = 0
        left = [calls]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                await one(client)

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await client.close()
        return {"cpu_us": 1e6 * cpu / calls, "per_s": calls / wall, "chunks": chunks[0] / calls}

    print(json.dumps(uvloop.run(run())))


def measure(tree: Path, load: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, __file__, "--child", load]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{tree} {load}: {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trees", type=Path, nargs="*", help="src/ directories (default: src)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loads", default=",".join(LOADS), help="comma-separated")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    trees = [t.resolve() for t in args.trees] or [lp.ROOT / "src"]
    work = lp.BENCH / "work" / "client-floor"
    work.mkdir(parents=True, exist_ok=True)
    (work / "nginx.conf").write_text(nginx_conf(work))
    lp.WORK = work
    nginx = ["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)]
    with contextlib.ExitStack() as stack:
        proc = stack.enter_context(lp.process(nginx, "nginx.log"))
        time.sleep(0.5)
        if proc.poll() is not None:
            raise SystemExit(f"nginx exited; see {work}/nginx.log")
        for load in args.loads.split(","):
            got: dict[Path, list[dict[str, float]]] = {tree: [] for tree in trees}
            for n in range(args.rounds):
                for tree in trees if n % 2 == 0 else trees[::-1]:
                    got[tree].append(measure(tree, load))
            for tree in trees:
                cpu = statistics.median(r["cpu_us"] for r in got[tree])
                per_s = statistics.median(r["per_s"] for r in got[tree])
                chunks = statistics.median(r["chunks"] for r in got[tree])
                print(
                    f"{load:13} {tree}: CPU/call {cpu:7.1f} us (median of {args.rounds}), "
                    f"{per_s:6.0f} calls/s, {chunks:.0f} chunks/call",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
