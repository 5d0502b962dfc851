"""Token logprobs and ``n`` choices through the gateway with the official openai SDK: relayed
from the providers that return them, stream and not; refused before any call where no
target can give them; a route keeps the targets that can."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
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
  - {name: anthropic, kind: anthropic, base_url: "${EMU}/anthropic", api_key: k}
  - {name: gemini, kind: gemini, base_url: "${EMU}/gemini", api_key: k}
  - {name: cohere, kind: cohere, base_url: "${EMU}/cohere", api_key: k}
  - {name: ollama, kind: ollama, base_url: "${EMU}/ollama", api_key: k}
  - {name: mistral, kind: mistral, base_url: "${EMU}/mistral", api_key: k}
models:
  - {name: gpt, provider: openai, upstream_model: emulator-vision, capabilities: [vision]}
  - {name: local, provider: vllm, upstream_model: emulator-vision, capabilities: [vision]}
  - {name: claude, provider: anthropic, upstream_model: claude-sonnet-4-5}
  - {name: gemini, provider: gemini, upstream_model: gemini-2.5-flash}
  - {name: command, provider: cohere, upstream_model: command-a-vision-07-2025}
  - {name: llama, provider: ollama, upstream_model: llava}
  - {name: pixtral, provider: mistral, upstream_model: pixtral-large-latest}
routes:
  - id: claude-first
    model_pattern: either
    strategy: priority
    providers:
      - {provider: anthropic, model: claude-sonnet-4-5}
      - {provider: openai, model: emulator-vision}
"""
ASK = [{"role": "user", "content": "Say something short."}]


@pytest.fixture(scope="module")
def sdk(emulator_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    env = {"EMU": emulator_url, "SPOOL": str(tmp_path_factory.mktemp("logprobs"))}
    apps = create_apps(parse_settings(CONFIG, env))
    with (
        serve_together(*apps) as (public, _),
        openai.OpenAI(base_url=f"{public}/v1", api_key="k", max_retries=0) as client,
    ):
        yield client


def _check_tokens(content: list[openai.types.chat.ChatCompletionTokenLogprob], top: int) -> None:
    assert content, "no tokens"
    for token in content:
        assert token.logprob <= 0
        assert token.bytes == list(token.token.encode())
        assert len(token.top_logprobs) == top
        if top:
            assert token.top_logprobs[0].token == token.token


@pytest.mark.parametrize("model", ["gpt", "local", "pixtral", "llama"])
def test_logprobs_relayed(sdk: openai.OpenAI, model: str) -> None:
    answer = sdk.chat.completions.create(model=model, messages=ASK, logprobs=True, top_logprobs=3)  # type: ignore[arg-type]
    choice = answer.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    _check_tokens(choice.logprobs.content, 3)
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content


def test_no_logprobs_unless_asked(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model="gpt", messages=ASK)  # type: ignore[arg-type]
    assert answer.choices[0].logprobs is None


@pytest.mark.parametrize("model", ["gpt", "pixtral", "llama"])
def test_logprobs_in_a_stream(sdk: openai.OpenAI, model: str) -> None:
    stream = sdk.chat.completions.create(
        model=model,
        messages=ASK,
        logprobs=True,
        top_logprobs=2,
        stream=True,  # type: ignore[arg-type]
    )
    text, tokens = "", []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.logprobs is not None and choice.logprobs.content:
                tokens.extend(choice.logprobs.content)
    _check_tokens(tokens, 2)
    assert "".join(t.token for t in tokens) == text


def test_n_choices(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model="gpt", messages=ASK, n=3, logprobs=True)  # type: ignore[arg-type]
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert answer.choices[2].message.content is not None
    assert answer.choices[2].message.content.endswith("(choice 2)")
    assert all(c.logprobs is not None for c in answer.choices)


def test_n_choices_streamed(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(model="gpt", messages=ASK, n=2, stream=True)  # type: ignore[arg-type]
    texts: dict[int, str] = {}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    assert sorted(texts) == [0, 1]
    assert texts[1].endswith("(choice 1)")


def test_logprobs_refused_where_none_can_be_had(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="claude", messages=ASK, logprobs=True)  # type: ignore[arg-type]
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "unsupported_parameter"
    assert error["param"] == "logprobs"
    assert "gpt" in error["message"] and "local" in error["message"]
    assert "claude" not in error["message"].split("Models that")[1]


def test_top_logprobs_over_the_kinds_bound(sdk: openai.OpenAI) -> None:
    # Cohere returns the chosen tokens' logprobs only, no alternatives.
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="command", messages=ASK, logprobs=True, top_logprobs=2)  # type: ignore[arg-type]
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "unsupported_parameter"
    assert caught.value.body["param"] == "top_logprobs"


def test_n_refused_before_any_call(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="claude", messages=ASK, n=2)  # type: ignore[arg-type]
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "unsupported_parameter"
    assert caught.value.body["param"] == "n"


def test_a_route_keeps_the_targets_that_can(sdk: openai.OpenAI) -> None:
    plain = sdk.chat.completions.with_raw_response.create(model="either", messages=ASK)  # type: ignore[arg-type]
    assert plain.parse().model == "either"
    asked = sdk.chat.completions.create(model="either", messages=ASK, logprobs=True)  # type: ignore[arg-type]
    assert asked.choices[0].logprobs is not None  # answered by the OpenAI target


def test_gateway_checks_top_logprobs(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="gpt", messages=ASK, top_logprobs=2)  # type: ignore[arg-type]
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == "top_logprobs"
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="gpt", messages=ASK, logprobs=True, top_logprobs=21)  # type: ignore[arg-type]


def test_models_list_says_who_returns_logprobs(sdk: openai.OpenAI) -> None:
    listed = sdk.models.with_raw_response.list(
        extra_query={"include_meta": "true"}
    ).http_response.json()
    capabilities = {m["id"]: m["_meta"]["capabilities"] for m in listed["data"]}
    assert capabilities["gpt"]["logprobs"] and capabilities["gemini"]["logprobs"]
    assert not capabilities["claude"]["logprobs"]
    assert capabilities["gpt"]["choices"] and not capabilities["claude"]["choices"]


def test_logprobs_from_gemini(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(
        model="gemini",
        messages=ASK,
        logprobs=True,
        top_logprobs=4,
        n=2,  # type: ignore[arg-type]
    )
    assert [c.index for c in answer.choices] == [0, 1]
    for choice in answer.choices:
        assert choice.logprobs is not None and choice.logprobs.content is not None
        _check_tokens(choice.logprobs.content, 4)
        assert "".join(t.token for t in choice.logprobs.content) == choice.message.content


def test_logprobs_from_gemini_streamed(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="gemini",
        messages=ASK,
        logprobs=True,
        stream=True,  # type: ignore[arg-type]
    )
    text, tokens = "", []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.logprobs is not None and choice.logprobs.content:
                tokens.extend(choice.logprobs.content)
    _check_tokens(tokens, 0)
    assert "".join(t.token for t in tokens) == text


def test_logprobs_from_cohere(sdk: openai.OpenAI) -> None:
    answer = sdk.chat.completions.create(model="command", messages=ASK, logprobs=True)  # type: ignore[arg-type]
    choice = answer.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    _check_tokens(choice.logprobs.content, 0)
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content


def test_logprobs_from_cohere_streamed(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="command",
        messages=ASK,
        logprobs=True,
        stream=True,  # type: ignore[arg-type]
    )
    text, tokens = "", []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.logprobs is not None and choice.logprobs.content:
                tokens.extend(choice.logprobs.content)
    _check_tokens(tokens, 0)
    assert "".join(t.token for t in tokens) == text


def test_logprobs_on_responses(sdk: openai.OpenAI) -> None:
    answer = sdk.responses.create(
        model="gpt",
        input="Say something.",
        include=["message.output_text.logprobs"],
        top_logprobs=2,
    )
    part = answer.output[0].content[0]  # type: ignore[union-attr]
    assert part.type == "output_text"
    assert part.logprobs and "".join(t.token for t in part.logprobs) == part.text
    assert all(len(t.top_logprobs) == 2 for t in part.logprobs)


def test_logprobs_on_a_responses_stream(sdk: openai.OpenAI) -> None:
    deltas, done = [], None
    with sdk.responses.stream(
        model="gemini", input="Say something.", include=["message.output_text.logprobs"]
    ) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.extend(event.logprobs)
            elif event.type == "response.output_text.done":
                done = event
    assert done is not None and deltas
    assert "".join(t.token for t in deltas) == done.text
    assert [t.token for t in done.logprobs or []] == [t.token for t in deltas]


def test_responses_refusal_names_include(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(model="claude", input="hi", include=["message.output_text.logprobs"])
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "unsupported_parameter"
    assert caught.value.body["param"] == "include"


def test_logprobs_on_the_c1_shortcut(sdk: openai.OpenAI) -> None:
    url = str(sdk.base_url).rstrip("/").removesuffix("/v1") + "/c1/chat"
    body = {"model": "gpt", "message": "Hi", "logprobs": True, "top_logprobs": 1, "n": 2}
    answer = httpx.post(url, json=body, timeout=10).json()
    assert [c["index"] for c in answer["choices"]] == [0, 1]
    assert answer["choices"][0]["logprobs"]["content"]
    refused = httpx.post(url, json={**body, "model": "claude"}, timeout=10)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unsupported_parameter"
