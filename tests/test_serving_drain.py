"""SIGTERM, as an orchestrator sends it, to ``aperture serve`` in its own process."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.upstreams import SlowStream


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def gateway(
    tmp_path: Path, slow_upstream: tuple[SlowStream, str]
) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    port, admin = _free_port(), _free_port()
    config = tmp_path / "aperture.yaml"
    config.write_text(
        f"""
server: {{port: {port}, admin_port: {admin}, drain_timeout_s: 1}}
storage: {{database: "sqlite:///{tmp_path}/aperture.db", spool_dir: "{tmp_path}/spool"}}
providers:
  - {{name: slow, kind: openai, base_url: "{slow_upstream[1]}/v1"}}
models:
  - {{name: slow-model, provider: slow}}
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APERTURE_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "aperture", "serve", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the gateway did not become ready"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield process, url, tmp_path / "aperture.db"
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def _audit(database: Path) -> dict[str, dict[str, object]]:
    with sqlite3.connect(database, timeout=10) as db:
        rows = db.execute("SELECT request_id, body FROM audit_events").fetchall()
    return {request_id: json.loads(body) for request_id, body in rows}


def test_sigterm_drains_refuses_new_work_and_cuts_streams_in_band(
    gateway: tuple[subprocess.Popen[str], str, Path],
) -> None:
    process, url, database = gateway
    body = {"model": "slow-model", "messages": [{"role": "user", "content": "count"}]}
    with (
        httpx.Client(base_url=url, timeout=30) as http,
        http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert '"content":"0 "' in next(lines)
        process.send_signal(signal.SIGTERM)

        # Readiness turns false at once; liveness holds while the drain runs.
        deadline = time.monotonic() + 5
        while (ready := httpx.get(f"{url}/readyz", timeout=5)).status_code == 200:
            assert time.monotonic() < deadline, "readiness stayed true"
            time.sleep(0.02)
        assert ready.status_code == 503
        assert ready.json() == {"status": "draining"}
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200

        # New work is refused, with a hint to come back (elsewhere).
        refused = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=5)
        assert refused.status_code == 503
        assert refused.headers["retry-after"]
        assert refused.headers["connection"] == "close"
        assert refused.json()["error"]["code"] == "shutting_down"

        # The stream in flight runs on for the drain (1 s), then ends with one error event.
        rest = [line for line in lines if line.startswith("data: ")]
        stream_id = stream.headers["x-request-id"]
    assert len(rest) > 3, "the stream did not run on during the drain"
    assert "shutting_down" in rest[-1]
    assert not any("[DONE]" in line for line in rest)

    assert process.wait(timeout=20) == 0
    # Everything is recorded: the cut stream and the refused request.
    events = _audit(database)
    assert events[stream_id]["status"] == 503
    assert events[stream_id]["error_code"] == "shutting_down"
    assert events[refused.headers["x-request-id"]]["error_code"] == "shutting_down"


def test_sigterm_with_nothing_in_flight_stops_at_once(
    gateway: tuple[subprocess.Popen[str], str, Path],
) -> None:
    process, url, _ = gateway
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200  # an idle kept-alive
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 0
