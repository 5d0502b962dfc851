"""``aperture serve --workers N``, run as a user runs it: a process tree on real ports."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists() or not hasattr(socket, "SO_REUSEPORT"),
    reason="workers share ports with SO_REUSEPORT; the test reads /proc (Linux)",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environment() -> dict[str, str]:
    # No OTEL_* variable (tracing off) and no APERTURE_CONFIG (the built-in demo).
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APERTURE_CONFIG"))}


@contextmanager
def _aperture(cwd: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "aperture", "serve", *args, "--log-level", "warning"],
        cwd=cwd,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def _wait_healthy(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    raise AssertionError("the gateway did not become healthy")


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _connections_by_process(port: int, pids: list[int]) -> dict[int, int]:
    """How many established connections to ``port`` each process holds the server end of."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(fields[9])
    counts: dict[int, int] = {}
    for pid in pids:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held += 1
        counts[pid] = held
    return counts


def test_two_workers_share_the_port_and_stop_on_sigterm(tmp_path: Path) -> None:
    port, admin_port = _free_port(), _free_port()
    args = ("--workers", "2", "--port", str(port), "--admin-port", str(admin_port))
    with _aperture(tmp_path, *args) as gateway, ExitStack() as connections:
        _wait_healthy(gateway, port)
        workers = _children(gateway.pid)
        assert len(workers) == 2

        # Sixteen connections held open: the kernel spreads them over both workers' sockets
        # (all on one worker would happen 1 time in 32,768).
        opened = []
        for _ in range(16):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connections.callback(connection.close)
            connection.request("GET", "/healthz")
            assert connection.getresponse().read() is not None
            opened.append(connection)
        held = _connections_by_process(port, workers)
        assert sum(held.values()) == 16, held
        assert all(count > 0 for count in held.values()), held

        body = {"model": "demo-text", "messages": [{"role": "user", "content": "hi"}]}
        for connection in opened[:4]:
            connection.request(
                "POST",
                "/v1/chat/completions",
                json.dumps(body),
                {"content-type": "application/json"},
            )
            response = connection.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["choices"][0]["message"]["content"]
        # Both workers report the same sums, whichever served the requests.
        deadline = time.monotonic() + 10
        while _chat_requests_counted(opened[0]) != 4 and time.monotonic() < deadline:
            time.sleep(0.05)  # counted just after each answer has gone
        assert {_chat_requests_counted(connection) for connection in opened} == {4}
        admin = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
        connections.callback(admin.close)
        admin.request("GET", "/v1/admin/routes")
        assert admin.getresponse().status == 403  # served: an open gateway has no admin API
        connections.close()

        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(timeout=30) == 0
        _, stderr = gateway.communicate()
        assert "2 workers" in stderr
        assert "storage.redis: none" in stderr
        for worker in workers:
            assert not Path(f"/proc/{worker}").exists()


def _chat_requests_counted(connection: http.client.HTTPConnection) -> float:
    """The ``aperture_requests_total`` of demo-text chat requests, as ``/metrics`` says."""
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    assert response.status == 200
    return sum(
        float(line.rpartition(" ")[2])
        for line in response.read().decode().splitlines()
        if line.startswith("aperture_requests_total{") and 'model="demo-text"' in line
    )


def test_a_worker_that_cannot_start_stops_the_gateway(tmp_path: Path) -> None:
    # Its SQLite file would be in a directory that does not exist: the migration fails.
    config = tmp_path / "aperture.yaml"
    config.write_text(
        f"""
storage: {{database: "sqlite:///{tmp_path}/missing/aperture.db", spool_dir: "{tmp_path}"}}
providers:
  - {{name: local, kind: openai, base_url: "http://127.0.0.1:9/v1"}}
models:
  - {{name: m, provider: local}}
"""
    )
    port, admin_port = _free_port(), _free_port()
    args = ("--config", str(config), "--workers", "2", "--port", str(port))
    with _aperture(tmp_path, *args, "--admin-port", str(admin_port)) as gateway:
        assert gateway.wait(timeout=60) == 1
        _, stderr = gateway.communicate()
    assert "did not start" in stderr
    assert "stopping the others" in stderr


def test_workers_must_be_positive(tmp_path: Path) -> None:
    with _aperture(tmp_path, "--workers", "0", "--port", str(_free_port())) as gateway:
        assert gateway.wait(timeout=30) == 2
        _, stderr = gateway.communicate()
    assert "--workers must be 1 or more" in stderr
