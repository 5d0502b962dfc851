"""``wire: responses``: the canonical request as a Responses API body, checked against the
official SDK's request types, at OpenAI's and Azure's addresses."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from openai.types.responses.response_create_params import ResponseCreateParamsStreaming
from pydantic import TypeAdapter

from aperture.errors import UnsupportedCapabilityError, UpstreamError
from aperture.model import (
    Audio,
    ChatRequest,
    File,
    Image,
    Message,
    NamedToolChoice,
    Reasoning,
    ResponseFormat,
    Target,
    Text,
    Thought,
    Tool,
    ToolCall,
)
from aperture.providers import provider_for
from aperture.settings import ProviderSettings, parse_settings
from aperture.settings.load import ConfigError
from aperture.upstream import SseEvent

PARAMS: TypeAdapter[Any] = TypeAdapter(ResponseCreateParamsStreaming)
FIELDS = (
    ResponseCreateParamsStreaming.__required_keys__
    | ResponseCreateParamsStreaming.__optional_keys__
)


def check(body: dict[str, Any]) -> None:
    """Every field as the SDK types it, and no field the API would call unknown."""
    PARAMS.validate_python(body)
    assert set(body) <= FIELDS


REQUEST = ChatRequest(
    model="public",
    messages=(
        Message("system", "Be brief."),
        Message(
            "user",
            (
                Text("What is this?"),
                Image("data:image/png;base64,AAAA", "low"),
                Image("https://example.com/cat.jpg"),
                File(file_data="data:application/pdf;base64,JVBE", filename="a.pdf"),
            ),
        ),
        Message("assistant", "Let me look.", tool_calls=(ToolCall("call_1", "look", "{}"),)),
        Message("tool", "a cat", tool_call_id="call_1"),
        Message("user", "Thanks."),
    ),
    max_tokens=300,
    temperature=0.5,
    tools=(Tool("look", "Looks.", {"type": "object"}),),
    tool_choice=NamedToolChoice("look"),
    response_format=ResponseFormat("json_schema", {"name": "s", "schema": {"type": "object"}}),
    stream=True,
    reasoning=Reasoning(effort="low"),
    extra={
        "modalities": msgspec.Raw(b'["text"]'),
        "metadata": msgspec.Raw(b'{"a": "b"}'),
    },
)


def target(kind: str, **fields: Any) -> Target:
    settings = ProviderSettings(name="p", kind=kind, api_key="k", **fields)
    return Target(settings, "upstream-model", "responses")


def test_the_body_is_a_responses_request_the_sdk_types() -> None:
    built = provider_for("openai", "responses").build_request(REQUEST, target("openai"))
    assert built.url == "https://api.openai.com/v1/responses"
    assert built.headers["Authorization"] == "Bearer k"
    body = json.loads(built.body)
    check(body)
    assert body["input"] == [
        {"type": "message", "role": "system", "content": "Be brief."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                {"type": "input_image", "image_url": "https://example.com/cat.jpg",
                 "detail": "auto"},
                {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE",
                 "filename": "a.pdf"},
            ],
        },
        {"type": "message", "role": "assistant", "content": "Let me look."},
        {"type": "function_call", "call_id": "call_1", "name": "look", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "a cat"},
        {"type": "message", "role": "user", "content": "Thanks."},
    ]  # fmt: skip
    assert body["tool_choice"] == {"type": "function", "name": "look"}
    assert body["tools"][0]["strict"] is False
    assert body["text"] == {
        "format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}
    }
    assert body["reasoning"] == {"effort": "low"}
    assert body["metadata"] == {"a": "b"}
    # Chat-only fields have no place here; nothing is kept at OpenAI.
    assert "modalities" not in body and body["store"] is False
    assert (body["max_output_tokens"], body["stream"]) == (300, True)
    assert "include" not in body
    asked = msgspec.structs.replace(REQUEST, logprobs=True, top_logprobs=3)
    body = json.loads(
        provider_for("openai", "responses").build_request(asked, target("openai")).body
    )
    check(body)
    assert (body["include"], body["top_logprobs"]) == (["message.output_text.logprobs"], 3)


@pytest.mark.parametrize(
    ("base_url", "version", "url"),
    [
        ("https://r.openai.azure.com/", None,
         "https://r.openai.azure.com/openai/responses?api-version=2025-04-01-preview"),
        ("https://r.openai.azure.com", "2025-05-01",
         "https://r.openai.azure.com/openai/responses?api-version=2025-05-01"),
        ("https://r.openai.azure.com/openai/v1", None, "https://r.openai.azure.com/openai/v1/responses"),
    ],
)  # fmt: skip
def test_azure_calls_its_responses_path_with_its_key(
    base_url: str, version: str | None, url: str
) -> None:
    built = provider_for("azure", "responses").build_request(
        REQUEST, target("azure", base_url=base_url, api_version=version)
    )
    assert built.url == url
    assert built.headers["api-key"] == "k" and "Authorization" not in built.headers
    body = json.loads(built.body)
    check(body)
    assert body["model"] == "upstream-model"


def test_an_answer_and_a_stream_become_canonical() -> None:
    provider = provider_for("openai", "responses")
    answer = {
        "id": "resp_1",
        "model": "m",
        "created_at": 1,
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "reasoning", "id": "rs_2", "encrypted_content": "c2ln",
             "summary": [{"type": "summary_text", "text": "Thought."}]},
            {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]},
        ],
        "usage": {"input_tokens": 3, "output_tokens": 1, "output_tokens_details": {
            "reasoning_tokens": 7}},
    }  # fmt: skip
    parsed = provider.parse_response(json.dumps(answer).encode(), target("openai"))
    choice = parsed.choices[0]
    assert (choice.content, choice.finish_reason) == ("Hi", "length")
    # An empty reasoning item says nothing; a summarised one is a thought, signed.
    assert choice.reasoning == (Thought("Thought.", "c2ln"),)
    assert parsed.usage is not None and parsed.usage.reasoning_tokens == 7

    parser = provider.stream_parser(target("openai"))
    call = {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "look"}
    events: list[Any] = []
    for data in [
        {"type": "response.output_item.added", "output_index": 0, "item": call},
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": '{"a"'},
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": ":1}"},
        {"type": "response.output_item.done", "output_index": 0, "item": call},
        {"type": "response.completed", "response": {"status": "completed", "usage": {}}},
    ]:
        events += parser.feed(SseEvent("", json.dumps(data)))
    assert parser.done
    calls = [c for e in events for c in (getattr(e, "tool_calls", None) or ())]
    assert (calls[0].id, calls[0].name) == ("c1", "look")
    assert "".join(c.arguments or "" for c in calls) == '{"a":1}'
    assert events[-2].reason == "tool_calls"

    failing = provider.stream_parser(target("openai"))
    with pytest.raises(UpstreamError, match="overloaded"):
        failing.feed(
            SseEvent("", '{"type": "error", "code": "server_error", "message": "overloaded"}')
        )


def test_a_wire_the_kind_does_not_offer_is_a_config_error() -> None:
    config = """
providers: [{name: a, kind: anthropic, api_key: k}]
models: [{name: m, provider: a, wire: responses}]
"""
    with pytest.raises(ConfigError) as caught:
        parse_settings(config, {})
    assert "models[0].wire" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"n": 2}, "n"),
        ({"stop": ("END",)}, "stop"),
        ({"messages": (Message("user", (Audio("AAAA", "wav"),)),)}, "messages"),
    ],
)
def test_what_the_responses_api_cannot_say_is_refused(change: dict[str, Any], param: str) -> None:
    request = msgspec.structs.replace(REQUEST, **change)
    with pytest.raises(UnsupportedCapabilityError) as caught:
        provider_for("openai", "responses").build_request(request, target("openai"))
    assert caught.value.param == param
