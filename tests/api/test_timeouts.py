"""Timeouts: the first byte of a stream, and the gap between two of its chunks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from aperture.app import create_app
from aperture.emulator import create_emulator_app
from aperture.settings import parse_settings
from tests.servers import serve
from tests.upstreams import stalling_app

CONFIG = """
storage: {database: "memory://", spool_dir: "${SPOOL}"}
providers:
  - {name: late, kind: openai, base_url: "${EMU}/openai/v1", api_key: k,
     headers: {x-emulator-fault: "delay=3000"}, first_byte_timeout_s: 0.3}
  - {name: stalling, kind: openai, base_url: "${STALL}/v1", idle_timeout_s: 0.3}
models:
  - {name: late, provider: late, upstream_model: emulator-vision}
  - {name: stalling, provider: stalling}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(create_emulator_app()) as emulator, serve(stalling_app()) as stall:
        env = {"EMU": emulator, "STALL": stall, "SPOOL": str(tmp_path_factory.mktemp("s"))}
        with serve(create_app(parse_settings(CONFIG, env))) as url:
            yield url


def stream(gateway: str, model: str) -> tuple[int, list[str], float]:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    started = time.monotonic()
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", json=body, timeout=30) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
        return r.status_code, lines, time.monotonic() - started


def test_no_first_byte_in_time_is_a_504(gateway: str) -> None:
    # Without the timeout the emulator would answer 200 after 3 s: a 504 proves it fired.
    status, _, _ = stream(gateway, "late")
    assert status == 504


def test_a_stalled_stream_ends_with_one_timeout_event(gateway: str) -> None:
    # Without the idle timeout the stream would end with [DONE] after 10 s.
    status, lines, _ = stream(gateway, "stalling")
    assert status == 200
    assert '"content":"first "' in lines[0]
    assert "upstream_timeout" in lines[-1]
    assert "[DONE]" not in lines[-1]
