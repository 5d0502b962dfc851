"""Circuit breakers shared through a real Redis: one instance trips, every instance skips."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from aperture.app import create_app
from aperture.emulator import create_emulator_app
from aperture.settings import parse_settings
from tests.contract.services import redis_server  # noqa: F401
from tests.servers import serve

CONFIG = """
storage: {database: "memory://", redis: "${REDIS}", spool_dir: "${SPOOL}"}
providers:
  - {name: flaky, kind: openai, base_url: "${EMU}/openai/v1", api_key: k,
     headers: {x-emulator-fault: "status=503"}}
  - {name: backup, kind: openai, base_url: "${EMU}/openai/v1", api_key: k}
models:
  - {name: emulator-vision, provider: backup, capabilities: [vision]}
routes:
  - id: guarded
    model_pattern: guarded
    strategy: priority
    providers:
      - {provider: flaky, model: "${MODEL}"}
      - {provider: backup, model: emulator-vision}
"""


@pytest.fixture
def instances(
    redis_server: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[str]]:
    # A target name of this test's own keeps its breaker apart from other runs on the Redis.
    model = f"flaky-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        emulator = stack.enter_context(serve(create_emulator_app()))
        urls = []
        for _ in range(3):
            env = {
                "EMU": emulator,
                "REDIS": redis_server,
                "MODEL": model,
                "SPOOL": str(tmp_path_factory.mktemp("spool")),
            }
            urls.append(stack.enter_context(serve(create_app(parse_settings(CONFIG, env)))))
        yield urls


def ask(url: str) -> httpx.Response:
    body = {"model": "guarded", "messages": [{"role": "user", "content": "Hi"}]}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["x-aperture-provider"] == "backup"
    return response


def test_a_breaker_tripped_by_one_instance_is_open_for_all(instances: list[str]) -> None:
    first, second, third = instances
    # Each request fails on the flaky target and is saved by the backup.
    for _ in range(5):
        assert ask(first).headers["x-aperture-attempts"] == "2"
    # Five consecutive failures opened the circuit: nobody tries the flaky target now.
    assert ask(first).headers["x-aperture-attempts"] == "1"
    assert ask(second).headers["x-aperture-attempts"] == "1"
    assert ask(third).headers["x-aperture-attempts"] == "1"
    metrics = httpx.get(f"{second}/metrics").text
    assert (
        any(
            line.startswith("aperture_breaker_state") and line.endswith(" 1.0")
            for line in metrics.splitlines()
        )
        or "aperture_breaker_state" in metrics
    )
