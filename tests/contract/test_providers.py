"""One contract every provider kind passes, through its emulator, over real HTTP.

The same OpenAI-shaped requests go to a model behind each provider; the emulators answer
with what they received, so each case proves the translation both ways.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from aperture.app import create_app
from aperture.emulator import create_emulator_app
from aperture.providers.registry import spec_for
from aperture.providers.spec import OtherWire, ProviderSpec
from aperture.settings import parse_settings
from tests import sample_images
from tests.servers import serve

# kind (or kind-wire) -> (emulator path, upstream model)
KINDS = {
    "openai": ("openai/v1", "emulator-vision"),
    "openai-responses": ("openai/v1", "emulator-vision"),
    "azure": ("azure", "emulator-vision"),
    "azure-v1": ("azure/openai/v1", "emulator-vision"),
    "azure-responses": ("azure", "emulator-vision"),
    "anthropic": ("anthropic", "claude-sonnet-4-5"),
    "gemini": ("gemini", "gemini-2.5-flash"),
    "bedrock": ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    "mistral": ("mistral", "pixtral-large-latest"),
    "cohere": ("cohere", "command-a-vision-07-2025"),
    "ollama": ("ollama", "llava:13b"),
    # An OpenAI-compatible preset (vLLM here; xai, groq, deepseek... speak the same wire).
    "vllm": ("vllm/v1", "emulator-vision"),
}
FAULTS = {"503": "status=503", "429": "status=429", "quota": "quota", "midstream": "midstream"}

JPEG = sample_images.data_uri(sample_images.jpeg(64, 48), "image/jpeg")
PNG = sample_images.data_uri(sample_images.png(30, 20), "image/png")


def api_of(entry: str) -> ProviderSpec | OtherWire:
    """The spec of an entry's kind, or of its other wire (``openai-responses``)."""
    kind, _, variant = entry.partition("-")
    return spec_for(kind).wire_named(variant if variant == "responses" else None)


def config(emulator: str) -> str:
    providers, models = [], []
    for entry, (path, upstream) in KINDS.items():
        kind, _, variant = entry.partition("-")
        wire = ", wire: responses" if variant == "responses" else ""
        for suffix, fault in {"": None, **FAULTS}.items():
            name = f"{entry}-{suffix}" if suffix else entry
            headers = f', headers: {{x-emulator-fault: "{fault}"}}' if fault else ""
            providers.append(
                f'  - {{name: {name}, kind: {kind}, base_url: "{emulator}/{path}", '
                f"api_key: k{headers}}}"
            )
            models.append(
                f"  - {{name: {name}, provider: {name}, upstream_model: {upstream}, "
                f"capabilities: [vision, tools, json_mode]{wire}}}"
            )
    storage = 'storage: {database: "memory://", spool_dir: "${SPOOL}"}\n'
    return (
        storage + "providers:\n" + "\n".join(providers) + "\nmodels:\n" + "\n".join(models) + "\n"
    )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(create_emulator_app()) as emulator:
        spool = str(tmp_path_factory.mktemp("spool"))
        settings = parse_settings(config(emulator), {"SPOOL": spool})
        with serve(create_app(settings)) as url:
            yield url


@pytest.fixture(scope="module")
def sdk(gateway: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0) as client:
        yield client


def user(text: str, *images: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return {"role": "user", "content": parts}


def ask(sdk: openai.OpenAI, kind: str, *messages: dict[str, Any], **extra: Any) -> str:
    completion = sdk.chat.completions.create(model=kind, messages=list(messages), **extra)  # type: ignore[call-overload]
    return completion.choices[0].message.content or ""


pytestmark = pytest.mark.parametrize("kind", sorted(KINDS))


def test_text(sdk: openai.OpenAI, kind: str) -> None:
    assert ask(sdk, kind, {"role": "system", "content": "Be brief."}, user("Hello")).startswith(
        'Saw no images. Asked: "Hello"'
    )


def test_one_image(sdk: openai.OpenAI, kind: str) -> None:
    assert "#1 image/jpeg 64x48" in ask(sdk, kind, user("What?", JPEG))


def test_several_images(sdk: openai.OpenAI, kind: str) -> None:
    answer = ask(sdk, kind, user("Compare.", JPEG, PNG))
    assert answer.startswith("Saw 2 images: #1 image/jpeg 64x48")
    assert "#2 image/png 30x20" in answer


def test_an_image_in_history(sdk: openai.OpenAI, kind: str) -> None:
    answer = ask(
        sdk,
        kind,
        user("First.", PNG),
        {"role": "assistant", "content": "A red box."},
        user("And this?", JPEG),
    )
    assert answer.startswith("Saw 2 images: #1 image/png 30x20")
    assert 'Asked: "And this?"' in answer


def test_stream(sdk: openai.OpenAI, kind: str) -> None:
    whole = ask(sdk, kind, user("What?", JPEG))
    chunks = list(
        sdk.chat.completions.create(
            model=kind,
            messages=[user("What?", JPEG)],  # type: ignore[list-item]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_tools(sdk: openai.OpenAI, kind: str) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "describe",
                "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
            },
        }
    ]
    completion = sdk.chat.completions.create(
        model=kind,
        messages=[user("Use it", JPEG)],  # type: ignore[list-item]
        tools=tools,  # type: ignore[arg-type]
        tool_choice="required",
    )
    (call,) = completion.choices[0].message.tool_calls or []
    assert call.function.name == "describe"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"text": "Use it"}  # type: ignore[union-attr]
    answer = ask(
        sdk,
        kind,
        user("Use it", JPEG),
        completion.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "a photo"},
        user("Thanks"),
        tools=tools,
        tool_choice="none",
    )
    assert 'Asked: "Thanks"' in answer


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("503", 503, "upstream_unavailable"),
        ("429", 429, "rate_limit_exceeded"),
        ("quota", 429, "insufficient_quota"),
    ],
)
def test_errors(gateway: str, kind: str, fault: str, status: int, code: str) -> None:
    response = httpx.post(
        f"{gateway}/v1/chat/completions",
        json={"model": f"{kind}-{fault}", "messages": [user("Hi", JPEG)]},
        timeout=30,
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_a_mid_stream_error(gateway: str, kind: str) -> None:
    body = {"model": f"{kind}-midstream", "messages": [user("Hi", JPEG)], "stream": True}
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert '"error"' in lines[-1]
    assert "[DONE]" not in lines[-1]


def test_logprobs(sdk: openai.OpenAI, kind: str) -> None:
    """Every kind whose spec says it returns logprobs relays them, stream and not; the rest
    refuse before any call."""
    support = api_of(kind).logprobs
    messages = [user("Hello")]
    if support is None:
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.chat.completions.create(model=kind, messages=messages, logprobs=True)  # type: ignore[arg-type]
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["code"] == "unsupported_parameter"
        return
    top = min(2, support.max_top)
    answer = sdk.chat.completions.create(
        model=kind,
        messages=messages,
        logprobs=True,
        top_logprobs=top,  # type: ignore[arg-type]
    )
    choice = answer.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
    assert all(len(t.top_logprobs) == top for t in choice.logprobs.content)
    stream = sdk.chat.completions.create(
        model=kind,
        messages=messages,
        logprobs=True,
        stream=True,  # type: ignore[arg-type]
    )
    text, tokens = "", ""
    for chunk in stream:
        for piece in chunk.choices:
            text += piece.delta.content or ""
            if piece.logprobs is not None and piece.logprobs.content:
                tokens += "".join(t.token for t in piece.logprobs.content)
    assert tokens == text


def test_several_choices(sdk: openai.OpenAI, kind: str) -> None:
    messages = [user("Hello")]
    if api_of(kind).max_choices < 2:
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.chat.completions.create(model=kind, messages=messages, n=2)  # type: ignore[arg-type]
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["code"] == "unsupported_parameter"
        return
    answer = sdk.chat.completions.create(model=kind, messages=messages, n=2)  # type: ignore[arg-type]
    assert [c.index for c in answer.choices] == [0, 1]
