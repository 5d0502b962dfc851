"""Cold start of ``aperture serve`` with the benchmark's configuration, honestly timed.

Spawns ``aperture serve --config <the harness's config>`` ``--runs`` times and reports, per
run, the wall time and the server's CPU time (user + system of its process tree) from spawn
to ``GET /healthz`` 200, and to the first proxied chat completion 200 (sent right after
health answers), so work deferred past the health check is still counted. The first run (a
fresh database: the schema is created) is reported apart and not in the medians, as the
harness's (e) scenario discards the first start. Aperture is byte-compiled first, as the
harness does (``--source`` skips it).

The upstream is a tiny canned chat.completion server in this process (a thread), on free
ports, so the probe can run beside a benchmark.

    .venv/bin/python bench/coldstart_probe.py --runs 7
    # against main, interleaved: main's code byte-compiled, and main as the bench ran it
    git archive main src | tar -x -C /tmp/main-src
    .venv/bin/python bench/coldstart_probe.py --runs 8 --versus-src /tmp/main-src/src \
        --versus-bin /work/main/.venv/bin/aperture
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402  (the config and the bodies are the benchmark's own)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((harness.HOST, 0))
        return int(s.getsockname()[1])


class _Upstream(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(socketserver.StreamRequestHandler):
    body = harness._completion_json().encode()

    def handle(self) -> None:
        while True:
            line = self.rfile.readline()
            if not line:
                return
            length = 0
            while True:
                header = self.rfile.readline()
                if header in (b"\r\n", b"\n", b""):
                    break
                name, _, value = header.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                self.rfile.read(length)
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(self.body)}\r\n\r\n"
            ).encode()
            self.wfile.write(head + self.body)
            self.wfile.flush()


def request(port: int, method: str, path: str, body: bytes | None = None) -> int:
    conn = http.client.HTTPConnection(harness.HOST, port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {harness.MASTER_KEY}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_start(argv: list[str], cwd: Path, port: int, chat: bytes,
              env: dict[str, str] | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        health = None
        health_cpu = 0.0
        while time.perf_counter() - t0 < 60:
            if proc.poll() is not None:
                raise RuntimeError(f"exited {proc.returncode}: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                if request(port, "GET", "/healthz") == 200:
                    health = time.perf_counter() - t0
                    health_cpu = harness.tree_cpu_s(proc.pid)
                    break
            except OSError:
                pass
            time.sleep(0.005)
        if health is None:
            raise RuntimeError("no health in 60 s")
        status = request(port, "POST", "/v1/chat/completions", chat)
        first = time.perf_counter() - t0
        first_cpu = harness.tree_cpu_s(proc.pid)
        if status != 200:
            raise RuntimeError(f"first chat completion answered {status}")
        time.sleep(1.0)
        idle = rss_mb(proc.pid)
        return {"health_ms": health * 1000, "first_chat_ms": first * 1000,
                "health_cpu_ms": health_cpu * 1000, "first_chat_cpu_ms": first_cpu * 1000,
                "idle_rss_mb": idle}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=6, help="counted runs (after the first)")
    parser.add_argument(
        "--bin", default=str(harness.ROOT / ".venv" / "bin" / "aperture"), help="aperture"
    )
    parser.add_argument(
        "--source", action="store_true", help="do not byte-compile Aperture first (as bench did)"
    )
    parser.add_argument(
        "--versus-src", action="append", default=[], metavar="DIR",
        help="also time the package in DIR/aperture (e.g. `git archive <commit> src`, "
             "byte-compiled here) with this venv; runs interleave, so load drifts alike",
    )
    parser.add_argument(
        "--versus-bin", action="append", default=[], metavar="BIN",
        help="also time another aperture executable, as it is (no byte-compiling)",
    )
    parser.add_argument("--anthropic", action="store_true", help="the anthropic provider too")
    args = parser.parse_args()

    if not args.source:
        harness.compile_aperture_bytecode()
    python = str(Path(args.bin).parent / "python")
    variants: dict[str, tuple[list[str], dict[str, str]]] = {args.bin: ([args.bin], {})}
    for src in args.versus_src:
        subprocess.run([python, "-m", "compileall", "-q", f"{src}/aperture"], check=True,
                       stdout=subprocess.DEVNULL)
        variants[src] = ([python, "-m", "aperture"], {"PYTHONPATH": src})
    for other in args.versus_bin:
        variants[other] = ([other], {})

    up = _Upstream((harness.HOST, 0), _Handler)
    up_port = up.server_address[1]
    threading.Thread(target=up.serve_forever, daemon=True).start()
    for name in ("UP_FAST", "UP_SLOW", "UP_STREAM", "UP_PACED", "UP_ANTHROPIC"):
        setattr(harness, name, up_port)
    import yaml

    chat = harness.chat_body("bench-text")
    plans = {}
    for label, (command, env) in variants.items():
        work = Path(tempfile.mkdtemp(prefix="aperture-coldstart-"))
        config = work / "aperture.yaml"
        config.write_text(yaml.safe_dump(harness.aperture_config(args.anthropic), sort_keys=False))
        port, admin = free_port(), free_port()
        argv = [*command, "serve", "--config", str(config), "--host", harness.HOST, "--port",
                str(port), "--admin-port", str(admin), "--log-level", "warning"]
        plans[label] = (argv, {**os.environ, **env}, work, port)

    def start(label: str) -> dict[str, Any]:
        argv, env, work, port = plans[label]
        return one_start(argv, work, port, chat, env)

    try:
        firsts = {label: start(label) for label in plans}
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label in plans}
        for _ in range(args.runs):
            for label in plans:
                runs[label].append(start(label))
    finally:
        for _, _, work, _ in plans.values():
            shutil.rmtree(work, ignore_errors=True)
        up.shutdown()

    for label, done in runs.items():
        def med(key: str) -> float:
            return round(statistics.median(r[key] for r in done), 1)  # noqa: B023

        print(json.dumps({
            "variant": label,
            "first_run_fresh_db": {k: round(v, 1) for k, v in firsts[label].items()},
            "runs_health_ms": [round(r["health_ms"], 1) for r in done],
            "runs_health_cpu_ms": [round(r["health_cpu_ms"], 1) for r in done],
            "median_health_ms": med("health_ms"),
            "median_first_chat_ms": med("first_chat_ms"),
            "median_health_cpu_ms": med("health_cpu_ms"),
            "median_first_chat_cpu_ms": med("first_chat_cpu_ms"),
            "median_idle_rss_mb": med("idle_rss_mb"),
        }, indent=1))
    print(json.dumps({"loadavg_at_end": os.getloadavg()}))


if __name__ == "__main__":
    main()
