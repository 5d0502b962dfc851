"""Routes: model patterns over several targets, by strategy, with capability-aware selection
and failover before the first byte."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aperture.app import create_app
from aperture.emulator import create_emulator_app
from aperture.settings import parse_settings
from tests import sample_images
from tests.servers import serve

CONFIG = """
storage: {database: "memory://", spool_dir: "${SPOOL}"}
providers:
  - {name: openai, kind: openai, base_url: "${EMU}/openai/v1", api_key: k}
  - {name: anthropic, kind: anthropic, base_url: "${EMU}/anthropic", api_key: k}
  - {name: gemini, kind: gemini, base_url: "${EMU}/gemini", api_key: k}
  - {name: dead, kind: openai, base_url: "http://127.0.0.1:9/v1"}
  - {name: broken, kind: openai, base_url: "${EMU}/openai/v1", api_key: k,
     headers: {x-emulator-fault: "status=503"}}
  - {name: refusing, kind: openai, base_url: "${EMU}/openai/v1", api_key: k,
     headers: {x-emulator-fault: "status=400"}}
models:
  - {name: emulator-vision, provider: openai, capabilities: [vision, tools]}
routes:
  - id: vision-route
    model_pattern: "gpt-4o*"
    strategy: weighted
    providers:
      - {provider: openai, model: emulator-vision, weight: 60}
      - {provider: anthropic, model: claude-sonnet-4-5, weight: 30}
      - {provider: gemini, model: gemini-2.5-flash, weight: 10}
  - id: failover
    model_pattern: resilient
    strategy: priority
    providers:
      - {provider: dead, model: emulator-vision, capabilities: [vision]}
      - {provider: broken, model: emulator-vision, capabilities: [vision]}
      - {provider: openai, model: emulator-vision}
  - id: mixed
    model_pattern: mixed
    providers:
      - {provider: openai, model: emulator-text}
      - {provider: anthropic, model: claude-sonnet-4-5}
  - id: text-only
    model_pattern: "text-*"
    providers:
      - {provider: openai, model: emulator-text}
  - id: strict
    model_pattern: strict
    providers:
      - {provider: refusing, model: emulator-vision}
      - {provider: openai, model: emulator-vision}
"""

JPEG = sample_images.data_uri(sample_images.jpeg(64, 48), "image/jpeg")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(create_emulator_app()) as emulator:
        env = {"EMU": emulator, "SPOOL": str(tmp_path_factory.mktemp("spool"))}
        with serve(create_app(parse_settings(CONFIG, env))) as url:
            yield url


def chat(gateway: str, model: str, *, image: bool = False, **extra: Any) -> httpx.Response:
    content: list[dict[str, Any]] = [{"type": "text", "text": "Hi"}]
    if image:
        content.append({"type": "image_url", "image_url": {"url": JPEG}})
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(f"{gateway}/v1/chat/completions", json=body, timeout=30)


def test_the_seeds_weighted_route_splits_60_30_10(gateway: str) -> None:
    draws = 300
    with httpx.Client(timeout=30) as client:
        served = Counter(
            client.post(
                f"{gateway}/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
            ).headers["x-aperture-provider"]
            for _ in range(draws)
        )
    for provider, share in (("openai", 0.6), ("anthropic", 0.3), ("gemini", 0.1)):
        sigma = (draws * share * (1 - share)) ** 0.5
        assert abs(served[provider] - draws * share) < 4 * sigma, served


def test_failover_tries_the_next_target(gateway: str) -> None:
    response = chat(gateway, "resilient", image=True)
    assert response.status_code == 200, response.text
    assert response.headers["x-aperture-provider"] == "openai"
    assert response.headers["x-aperture-attempts"] == "3"


def test_a_stream_fails_over_before_its_first_byte(gateway: str) -> None:
    body = {"model": "resilient", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["x-aperture-provider"] == "openai"
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"


def test_deterministic_refusals_do_not_fail_over(gateway: str) -> None:
    response = chat(gateway, "strict")
    assert response.status_code == 400
    assert response.headers["x-should-retry"] == "false"


def test_images_go_only_to_targets_that_can_see(gateway: str) -> None:
    providers = {
        chat(gateway, "mixed", image=True).headers["x-aperture-provider"] for _ in range(5)
    }
    assert providers == {"anthropic"}
    assert chat(gateway, "mixed").headers["x-aperture-provider"] == "openai"


def test_a_route_without_a_seeing_target_refuses_before_any_call(gateway: str) -> None:
    response = chat(gateway, "text-anything", image=True)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unsupported_capability"
    assert "route 'text-only'" in error["message"]
    assert "emulator-vision" in error["message"]
