"""Reasoning, one contract for every provider kind that thinks, through its emulator.

The same Chat Completions request with ``reasoning_effort`` goes to a reasoning model of
each kind: the kinds that return their thinking send it back as ``reasoning_content``
(streamed too), OpenAI's models count it as ``reasoning_tokens``; the kinds without a
reasoning model refuse the request before any call.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from aperture.app import create_app
from aperture.emulator import create_emulator_app
from aperture.settings import parse_settings
from tests.servers import serve

# kind -> (emulator path, a reasoning model of the kind, whether its thinking is returned)
THINKERS = {
    "openai": ("openai/v1", "o4-mini", False),
    "anthropic": ("anthropic", "claude-sonnet-4-5", True),
    "gemini": ("gemini", "gemini-2.5-flash", True),
    "bedrock": ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", True),
}
# Kinds whose known models do not reason.
OTHERS = {
    "mistral": ("mistral", "pixtral-large-latest"),
    "cohere": ("cohere", "command-a-vision-07-2025"),
    "ollama": ("ollama", "llava:13b"),
}
ASK = [{"role": "user", "content": "Why is the sky blue?"}]


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    with serve(create_emulator_app()) as emulator:
        kinds = {k: (path, model) for k, (path, model, _) in THINKERS.items()} | OTHERS
        providers = [
            f'  - {{name: {k}, kind: {k}, base_url: "{emulator}/{path}", api_key: k}}'
            for k, (path, _) in kinds.items()
        ]
        models = [
            f"  - {{name: {k}, provider: {k}, upstream_model: {model}}}"
            for k, (_, model) in kinds.items()
        ]
        text = (
            'storage: {database: "memory://", spool_dir: "${SPOOL}"}\n'
            + "providers:\n"
            + "\n".join(providers)
            + "\nmodels:\n"
            + "\n".join(models)
            + "\n"
        )
        settings = parse_settings(text, {"SPOOL": str(tmp_path_factory.mktemp("spool"))})
        with (
            serve(create_app(settings)) as url,
            openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client,
        ):
            yield client


@pytest.mark.parametrize("kind", sorted(THINKERS))
def test_reasoning_effort_thinks(sdk: openai.OpenAI, kind: str) -> None:
    completion = sdk.chat.completions.create(model=kind, reasoning_effort="low", messages=ASK)  # type: ignore[arg-type]
    message = completion.choices[0].message
    assert message.content
    thought = (message.model_extra or {}).get("reasoning_content")
    if THINKERS[kind][2]:
        assert thought and "Why is the sky blue?" in thought
    else:
        usage = completion.usage
        assert usage is not None and usage.completion_tokens_details is not None
        assert usage.completion_tokens_details.reasoning_tokens


@pytest.mark.parametrize("kind", sorted(k for k, v in THINKERS.items() if v[2]))
def test_reasoning_streams(sdk: openai.OpenAI, kind: str) -> None:
    stream = sdk.chat.completions.create(
        model=kind,
        reasoning_effort="low",
        stream=True,
        messages=ASK,  # type: ignore[arg-type]
    )
    thought, content = [], []
    for chunk in stream:
        for choice in chunk.choices:
            thought.append((choice.delta.model_extra or {}).get("reasoning_content") or "")
            content.append(choice.delta.content or "")
    assert "Why is the sky blue?" in "".join(thought)
    assert "".join(content)


@pytest.mark.parametrize("kind", sorted(OTHERS))
def test_a_kind_without_reasoning_models_refuses_before_the_call(
    sdk: openai.OpenAI, kind: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model=kind, reasoning_effort="low", messages=ASK)  # type: ignore[arg-type]
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "unsupported_capability"
