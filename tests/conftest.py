"""Real servers for the suite: the emulator and gateways over loopback HTTP."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import httpx
import openai
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from aperture.app import create_app
from aperture.emulator import create_emulator_app
from aperture.settings import Settings, parse_settings
from tests.servers import serve
from tests.upstreams import Recorder, SlowStream, image_server_app

# The suite shares a small, loaded machine: a property holds or fails on its examples, never
# on how long one took to run or to generate.
hypothesis_settings.register_profile(
    "aperture", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("aperture")

GATEWAY_CONFIG = """
server: {max_body_bytes: 3000000}
storage: {database: "sqlite:///${STATE}/aperture.db", spool_dir: "${STATE}/spool"}
images:
  max_image_bytes: 1000000
  max_image_pixels: 4000000
  max_images_per_request: 8
  max_frames: 50
  fetch: {allow_private_hosts: ["127.0.0.0/8:${IMAGE_PORT}"], timeout_s: 5}
providers:
  - {name: emu, kind: openai, base_url: "${EMULATOR}/openai/v1", api_key: test-key}
  # An OpenAI-compatible server (vLLM's emulator): it takes fields OpenAI would refuse.
  - {name: recorded, kind: openai, base_url: "${RECORDER}/vllm/v1", api_key: rec-key,
     headers: {x-team: vision}}
  - {name: slow, kind: openai, base_url: "${SLOW}/v1"}
  - {name: claude-emu, kind: anthropic, base_url: "${EMULATOR}/anthropic", api_key: test-key}
  - {name: gemini-emu, kind: gemini, base_url: "${EMULATOR}/gemini", api_key: test-key}
  - {name: claude-recorded, kind: anthropic, base_url: "${RECORDER}/anthropic", api_key: rec}
  - {name: recorded-bytes-only, kind: openai, base_url: "${RECORDER}/openai/v1", api_key: k,
     images: {fetches_urls: false}}
  - {name: recorded-small, kind: openai, base_url: "${RECORDER}/openai/v1", api_key: k,
     images: {max_side: 100, max_bytes: 6000, accepted: [image/jpeg, image/png]}}
  - {name: dead, kind: openai, base_url: "http://127.0.0.1:9/v1"}
  - {name: emu-503, kind: openai, base_url: "${EMULATOR}/openai/v1", api_key: k,
     headers: {x-emulator-fault: "status=503"}}
  - {name: emu-429, kind: openai, base_url: "${EMULATOR}/openai/v1", api_key: k,
     headers: {x-emulator-fault: "status=429"}}
  - {name: emu-400, kind: openai, base_url: "${EMULATOR}/openai/v1", api_key: k,
     headers: {x-emulator-fault: "status=400"}}
  - {name: emu-quota, kind: openai, base_url: "${EMULATOR}/openai/v1", api_key: k,
     headers: {x-emulator-fault: quota}}
  - {name: emu-midstream, kind: openai, base_url: "${EMULATOR}/openai/v1", api_key: k,
     headers: {x-emulator-fault: midstream}}
models:
  - {name: demo-vision, provider: emu, upstream_model: emulator-vision,
     capabilities: [vision, tools, json_mode], aliases: [vision-alias]}
  - {name: demo-text, provider: emu, upstream_model: emulator-text, capabilities: [tools]}
  - {name: gpt-5.5-pro, provider: emu, upstream_model: emulator-vision, capabilities: [vision],
     constraints: {min_max_tokens: 200}}
  - {name: url-passthrough, provider: emu, upstream_model: emulator-vision,
     capabilities: [vision], url_policy: passthrough}
  - {name: two-images, provider: emu, upstream_model: emulator-vision, capabilities: [vision],
     constraints: {max_images: 2}}
  - {name: recorded-vision, provider: recorded, upstream_model: emulator-vision,
     capabilities: [vision, audio, tools]}
  - {name: slow-model, provider: slow}
  - {name: claude-vision, provider: claude-emu, upstream_model: claude-sonnet-4-5}
  - {name: claude-recorded, provider: claude-recorded, upstream_model: claude-sonnet-4-5}
  - {name: claude-text, provider: claude-emu, upstream_model: claude-2.1}
  - {name: gemini-vision, provider: gemini-emu, upstream_model: gemini-2.5-flash}
  - {name: fetching, provider: recorded, upstream_model: emulator-vision, capabilities: [vision],
     url_policy: fetch}
  - {name: auto-bytes, provider: recorded-bytes-only, upstream_model: emulator-vision,
     capabilities: [vision], url_policy: auto}
  - {name: auto-urls, provider: recorded, upstream_model: emulator-vision,
     capabilities: [vision], url_policy: auto}
  - {name: small-images, provider: recorded-small, upstream_model: emulator-vision,
     capabilities: [vision]}
  - {name: dead-model, provider: dead, capabilities: [vision]}
  - {name: failing-503, provider: emu-503, upstream_model: emulator-vision,
     capabilities: [vision]}
  - {name: failing-429, provider: emu-429, upstream_model: emulator-vision,
     capabilities: [vision]}
  - {name: failing-400, provider: emu-400, upstream_model: emulator-vision,
     capabilities: [vision]}
  - {name: failing-quota, provider: emu-quota, upstream_model: emulator-vision,
     capabilities: [vision]}
  - {name: failing-midstream, provider: emu-midstream, upstream_model: emulator-vision,
     capabilities: [vision]}
  - {name: reasoner, provider: recorded, upstream_model: o4-mini}
"""


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    """The cyclic collector off: what is freed, references freed, not a collection."""
    gc.disable()
    yield
    gc.enable()


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    with serve(create_emulator_app()) as url:
        yield url


@pytest.fixture(scope="session")
def recorder() -> Iterator[tuple[Recorder, str]]:
    recorder = Recorder(create_emulator_app())
    with serve(recorder) as url:
        yield recorder, url


@pytest.fixture(scope="session")
def slow_upstream() -> Iterator[tuple[SlowStream, str]]:
    slow = SlowStream()
    with serve(slow.app) as url:
        yield slow, url


@pytest.fixture(scope="session")
def image_server() -> Iterator[str]:
    with serve(image_server_app()) as url:
        yield url


@pytest.fixture(scope="session")
def gateway_settings(
    emulator_url: str,
    recorder: tuple[Recorder, str],
    slow_upstream: tuple[SlowStream, str],
    image_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    env = {
        "EMULATOR": emulator_url,
        "RECORDER": recorder[1],
        "SLOW": slow_upstream[1],
        # The image server's port is written into the allow-list, as an operator would for
        # an internal server off 80/443: the network alone opens only the standard ports.
        "IMAGE_PORT": str(httpx.URL(image_server).port),
        "STATE": str(tmp_path_factory.mktemp("gateway-state")),
    }
    return parse_settings(GATEWAY_CONFIG, env)


@pytest.fixture(scope="session")
def gateway_url(gateway_settings: Settings) -> Iterator[str]:
    with serve(create_app(gateway_settings)) as url:
        yield url


@pytest.fixture
def client(gateway_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def http(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        yield client
