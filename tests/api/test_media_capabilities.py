"""Audio and video parts are checked against the target's provider before any call, with
the official openai SDK through real HTTP: the kinds whose API carries no video never get
one, formats, sizes and WAV lengths are held to each provider's limits, and a route goes to
a target that can take the part."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from aperture.app import create_apps
from aperture.settings import parse_settings
from tests.servers import serve_together

CONFIG = """
storage: {database: "memory://", spool_dir: "${SPOOL}"}
providers:
  - {name: openai, kind: openai, base_url: "${EMU}/openai/v1", api_key: k}
  - {name: vllm, kind: vllm, base_url: "${EMU}/vllm/v1", api_key: k}
  - {name: gemini, kind: gemini, base_url: "${EMU}/gemini", api_key: k}
  - {name: anthropic, kind: anthropic, base_url: "${EMU}/anthropic", api_key: k}
models:
  - {name: gpt-av, provider: openai, upstream_model: emulator-vision,
     capabilities: [vision, audio, video]}
  - {name: local-av, provider: vllm, upstream_model: emulator-vision,
     capabilities: [vision, audio, video]}
  - {name: gemini, provider: gemini, upstream_model: gemini-2.5-flash}
  - {name: claude-av, provider: anthropic, upstream_model: claude-sonnet-4-5,
     capabilities: [vision, audio, video]}
routes:
  - id: video-somewhere
    model_pattern: either
    strategy: priority
    providers:
      - {provider: openai, model: emulator-vision, capabilities: [vision, video]}
      - {provider: vllm, model: emulator-vision, capabilities: [vision, video]}
"""
VIDEO = {"type": "video_url", "video_url": {"url": "https://videos.example/clip.mp4"}}


def wav(seconds: float, *, actual_bytes: int = 64) -> str:
    """A WAV whose header says ``seconds`` of 8 kHz mono 16-bit audio (the samples are cut)."""
    rate, byte_rate = 8000, 16000
    size = int(seconds * byte_rate)
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, byte_rate, 2, 16)
    head = b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE" + fmt
    data = b"data" + struct.pack("<I", size) + b"\0" * actual_bytes
    return base64.b64encode(head + data).decode()


def audio(data: str, fmt: str = "wav") -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}


def ask(part: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, part]}]


@pytest.fixture(scope="module")
def sdk(emulator_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    env = {"EMU": emulator_url, "SPOOL": str(tmp_path_factory.mktemp("media"))}
    apps = create_apps(parse_settings(CONFIG, env))
    with (
        serve_together(*apps) as (public, _),
        openai.OpenAI(base_url=f"{public}/v1", api_key="k", max_retries=0) as client,
    ):
        yield client


def refusal(sdk: openai.OpenAI, model: str, part: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model=model, messages=ask(part))  # type: ignore[arg-type]
    body = caught.value.body
    assert isinstance(body, dict)
    body["status"] = caught.value.status_code
    return body


def test_video_never_reaches_openais_api(sdk: openai.OpenAI) -> None:
    error = refusal(sdk, "gpt-av", VIDEO)
    assert error["status"] == 400
    assert error["code"] == "unsupported_capability"  # the gateway's, not the provider's
    assert error["param"] == "messages[0].content[1]"
    assert "local-av" in error["message"] and "gemini" in error["message"]


def test_video_reaches_a_server_that_takes_it(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model="local-av", messages=ask(VIDEO))  # type: ignore[arg-type]
    assert answer.choices[0].message.content


def test_a_route_sends_video_to_the_target_that_takes_it(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model="either", messages=ask(VIDEO))  # type: ignore[arg-type]
    assert answer.choices[0].message.content


def test_anthropic_gets_no_audio_whatever_the_config_says(sdk: openai.OpenAI) -> None:
    error = refusal(sdk, "claude-av", audio(wav(1)))
    assert error["code"] == "unsupported_capability"
    assert error["param"] == "messages[0].content[1]"


def test_audio_format_held_to_the_provider(sdk: openai.OpenAI) -> None:
    error = refusal(sdk, "gpt-av", audio(wav(1), "flac"))
    assert error["code"] == "unsupported_capability"
    assert "mp3, wav" in error["message"]


def test_a_wav_too_long_for_gemini(sdk: openai.OpenAI) -> None:
    error = refusal(sdk, "gemini", audio(wav(10 * 3600)))
    assert error["status"] == 413
    assert error["code"] == "media_too_large"
    assert error["param"] == "messages[0].content[1]"
    assert "34200 s" in error["message"]


def test_audio_too_large_for_gemini(sdk: openai.OpenAI) -> None:
    big = base64.b64encode(b"\0" * 20_000_100).decode()
    error = refusal(sdk, "gemini", audio(big, "mp3"))
    assert error["status"] == 413
    assert error["code"] == "media_too_large"
