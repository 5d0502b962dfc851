"""What a model can do through its kind's API: media the API cannot carry are taken away,
logprobs and several choices are added where the kind returns them."""

from __future__ import annotations

import pytest

from aperture.providers.registry import spec_for

AV = frozenset({"vision", "audio", "video"})


@pytest.mark.parametrize(
    ("kind", "model", "has", "lacks"),
    [
        ("openai", "gpt-4o", {"vision", "audio", "logprobs", "choices"}, {"video"}),
        ("openai", "gpt-5-mini", {"vision", "choices"}, {"logprobs", "video"}),
        ("openai", "o3", {"choices"}, {"logprobs"}),
        ("vllm", "any/model", {"audio", "video", "logprobs", "choices"}, set()),
        ("groq", "llama", {"vision"}, {"audio", "video", "logprobs", "choices"}),
        ("deepseek", "deepseek-reasoner", set(), {"logprobs"}),
        ("gemini", "gemini-2.5-flash", {"audio", "video", "logprobs", "choices"}, set()),
        ("anthropic", "claude-sonnet-4-5", {"vision"}, {"audio", "video", "logprobs", "choices"}),
        ("bedrock", "amazon.nova-pro-v1:0", {"vision"}, {"audio", "video", "logprobs"}),
        ("cohere", "command-a", {"logprobs"}, {"audio", "video", "choices"}),
        ("mistral", "voxtral-small", {"audio", "logprobs", "choices"}, {"video"}),
        ("ollama", "llava", {"logprobs"}, {"audio", "video", "choices"}),
    ],
)
def test_carried(kind: str, model: str, has: set[str], lacks: set[str]) -> None:
    carried = spec_for(kind).carried(AV, model)
    assert has <= carried
    assert not lacks & carried


def test_top_logprobs_bounds() -> None:
    bounds = {kind: spec_for(kind).logprobs for kind in ("openai", "xai", "qwen", "cohere")}
    assert {k: b.max_top for k, b in bounds.items() if b is not None} == {
        "openai": 20,
        "xai": 8,
        "qwen": 5,
        "cohere": 0,
    }
