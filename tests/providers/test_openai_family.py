"""The openai adapter and the kinds that share its wire format (Azure, presets)."""

from __future__ import annotations

import json

import pytest

from aperture.model import ChatRequest, Image, Message, Target, Text
from aperture.providers import provider_for
from aperture.providers.presets import OPENAI_ADAPTER
from aperture.providers.registry import SPECS
from aperture.routing.known_models import known_capabilities
from aperture.settings import ProviderSettings

REQUEST = ChatRequest(
    model="public-name",
    messages=(Message("user", (Text("Hi"), Image("data:image/png;base64,AAAA", "low"))),),
    max_tokens=10,
)


def target(kind: str, **settings: object) -> Target:
    return Target(ProviderSettings(name="p", kind=kind, **settings), "upstream-model")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", sorted(k for k, s in SPECS.items() if s.adapter == OPENAI_ADAPTER))
def test_presets_default_to_their_base_url_with_a_bearer_key(kind: str) -> None:
    built = provider_for(kind).build_request(REQUEST, target(kind, api_key="k"))
    assert built.url == f"{SPECS[kind].base_url}/chat/completions"
    assert built.headers["Authorization"] == "Bearer k"
    body = json.loads(built.body)
    assert body["model"] == "upstream-model"
    assert body["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
    }


def test_azure_uses_deployments_api_version_and_api_key() -> None:
    built = provider_for("azure").build_request(
        REQUEST,
        target(
            "azure",
            base_url="https://res.openai.azure.com/",
            api_key="az",
            api_version="2025-01-01",
        ),
    )
    assert built.url == (
        "https://res.openai.azure.com/openai/deployments/upstream-model/chat/completions"
        "?api-version=2025-01-01"
    )
    assert built.headers["api-key"] == "az"
    assert "Authorization" not in built.headers


def test_azure_v1_endpoints_take_the_model_in_the_body() -> None:
    built = provider_for("azure").build_request(
        REQUEST, target("azure", base_url="https://res.openai.azure.com/openai/v1", api_key="az")
    )
    assert built.url == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert json.loads(built.body)["model"] == "upstream-model"


@pytest.mark.parametrize(
    ("kind", "model", "vision"),
    [
        ("openai", "gpt-4o-mini", True),
        ("openai", "gpt-3.5-turbo", False),
        ("anthropic", "claude-sonnet-4-5", True),
        ("gemini", "gemini-2.5-flash", True),
        ("bedrock", "us.anthropic.claude-3-5-sonnet-20241022-v2:0", True),
        ("bedrock", "amazon.titan-text-express-v1", False),
        ("mistral", "pixtral-large-latest", True),
        ("mistral", "open-mistral-nemo", False),
        ("cohere", "command-r-plus", False),
        ("groq", "llama-3.3-70b-versatile", False),
        ("groq", "meta-llama/llama-4-scout-17b-16e-instruct", True),
        ("ollama", "llama3.1", False),
        ("ollama", "llava:13b", True),
        ("deepseek", "deepseek-chat", False),
        ("glm", "glm-4v-plus", True),
        ("glm", "glm-4-plus", False),
        ("qwen", "qwen-vl-max", True),
        ("moonshot", "moonshot-v1-8k", False),
        ("xai", "grok-2-vision-1212", True),
    ],
)
def test_known_models_say_which_can_see(kind: str, model: str, vision: bool) -> None:
    assert ("vision" in (known_capabilities(kind, model) or frozenset())) is vision
