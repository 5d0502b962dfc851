"""The Anthropic adapter: golden request bodies, response and stream parsing, error mapping.

Every built body is checked three ways: against the SDK's own request schema, against the
strict rules that schema does not enforce (media types, alternation, tool_result placement),
and by the emulator's validator, which answers like Anthropic.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import msgspec
import pydantic
import pytest
from anthropic.types.message_create_params import (
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)

from aperture.emulator.anthropic_errors import AnthropicError
from aperture.emulator.anthropic_request import FIELDS, parse_messages_request
from aperture.errors import (
    ImageDecodeError,
    InvalidRequestError,
    UnsupportedCapabilityError,
    UnsupportedImageFormatError,
    UpstreamError,
    UpstreamQuotaError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from aperture.model import (
    Audio,
    ChatRequest,
    Delta,
    File,
    Finish,
    Image,
    InlineImage,
    Message,
    NamedToolChoice,
    ResponseFormat,
    StreamEvent,
    Target,
    Text,
    Thought,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from aperture.providers.anthropic import (
    DEFAULT_MAX_TOKENS,
    IMAGE_MEDIA_TYPES,
    AnthropicProvider,
)
from aperture.settings import ProviderSettings
from aperture.upstream import SseDecoder, SseEvent
from tests.sample_images import jpeg

PROVIDER = AnthropicProvider()
SETTINGS = ProviderSettings(
    name="claude", kind="anthropic", api_key="sk-ant-secret", headers={"x-team": "vision"}
)
TARGET = Target(SETTINGS, "claude-sonnet-4-5")
JPEG = jpeg(64, 48)
JPEG_B64 = base64.b64encode(JPEG).decode()
# Module-level: the lazily validated iterators need their adapter alive while they are walked.
NON_STREAMING = pydantic.TypeAdapter(MessageCreateParamsNonStreaming)
STREAMING = pydantic.TypeAdapter(MessageCreateParamsStreaming)


# ---------------------------------------------------------------------------------------------
# Helpers


def inline(
    data: bytes, mime: str, width: int, height: int, *, declared: str | None = None
) -> Image:
    """An image as intake leaves it: a canonical data URI plus what was learned about it."""
    prefix = f"data:{declared or mime};base64,"
    values: dict[str, Any] = {
        "mime": mime,
        "width": width,
        "height": height,
        "size_bytes": len(data),
        "frames": 1,
        "payload_offset": len(prefix),
        "sha256": "0" * 64,
    }
    fields = InlineImage.__struct_fields__
    info = InlineImage(**{k: v for k, v in values.items() if k in fields})
    return Image(prefix + base64.b64encode(data).decode(), inline=info)


def request(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model="claude", messages=messages, **fields)


def build(chat: ChatRequest, target: Target = TARGET) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(PROVIDER.build_request(chat, target).body)
    assert_valid(body)
    return body


def _force(value: Any) -> Any:
    """Pydantic validates ``Iterable`` fields lazily: walk them so every item is validated."""
    if isinstance(value, dict):
        return {k: _force(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_force(v) for v in value]
    if isinstance(value, Iterator):
        return [_force(v) for v in value]
    return value


def assert_valid(body: dict[str, Any]) -> None:
    """The SDK's schema, the strict rules it leaves out, and the emulator's validator."""
    adapter = STREAMING if body.get("stream") else NON_STREAMING
    _force(adapter.validate_python(body))
    assert set(body) <= FIELDS
    assert_strict(body)
    try:
        parse_messages_request(msgspec.json.encode(body))
    except AnthropicError as error:  # pragma: no cover - the message is the diagnosis
        pytest.fail(f"the emulator refused the body: {error.message}")


def assert_strict(body: dict[str, Any]) -> None:
    assert isinstance(body["max_tokens"], int)
    assert "system" not in body or isinstance(body["system"], str)
    turns = body["messages"]
    assert turns, "at least one turn"
    assert turns[0]["role"] == "user"
    for previous, turn in itertools.pairwise(turns):
        assert previous["role"] != turn["role"], "roles alternate"
    pending: set[str] = set()
    for turn in turns:
        blocks = turn["content"]
        assert isinstance(blocks, list)
        assert blocks, "no empty turns"
        kinds = [block["type"] for block in blocks]
        results = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
        if turn["role"] == "user":
            # tool_result blocks open the turn and answer exactly the previous tool_use ids.
            assert kinds[: len(results)] == ["tool_result"] * len(results)
            assert set(results) == pending
            pending = set()
        else:
            assert not results
            assert "image" not in kinds
            pending = {b["id"] for b in blocks if b["type"] == "tool_use"}
        for block in blocks:
            _assert_block(block)


def _assert_block(block: dict[str, Any]) -> None:
    if block["type"] == "text":
        assert block["text"].strip(), "no empty or blank text blocks"
    if block["type"] == "image":
        source = block["source"]
        if source["type"] == "base64":
            assert source["media_type"] in IMAGE_MEDIA_TYPES
            assert source["media_type"] != "image/jpg"
            assert not source["data"].startswith("data:")
            base64.b64decode(source["data"], validate=True)
        else:
            assert source["type"] == "url"
            assert source["url"].startswith(("http://", "https://"))
    if block["type"] == "tool_use":
        assert isinstance(block["input"], dict)
    if block["type"] == "tool_result" and isinstance(block.get("content"), list):
        for inner in block["content"]:
            _assert_block(inner)


def feed(wire: str) -> tuple[list[StreamEvent], Any]:
    parser = PROVIDER.stream_parser(TARGET)
    events: list[StreamEvent] = []
    for event in SseDecoder().feed(wire.encode()):
        assert not parser.done
        events += parser.feed(event)
    return events, parser


def sse(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


# ---------------------------------------------------------------------------------------------
# Requests


def test_golden_text_request_with_defaults() -> None:
    chat = request(
        Message("system", "You are terse."),
        Message("developer", (Text("Answer in English."),)),
        Message("user", "Hello"),
    )
    upstream = PROVIDER.build_request(chat, TARGET)
    assert upstream.url == "https://api.anthropic.com/v1/messages"
    assert upstream.method == "POST"
    assert dict(upstream.headers) == {
        "Content-Type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-team": "vision",
        "x-api-key": "sk-ant-secret",
    }
    assert "Authorization" not in upstream.headers
    assert build(chat) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": DEFAULT_MAX_TOKENS,
        "system": "You are terse.\n\nAnswer in English.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
    }
    assert DEFAULT_MAX_TOKENS == 4096


def test_golden_vision_and_tool_conversation() -> None:
    weather = Tool(
        "get_weather",
        "Weather for a city.",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    chat = request(
        Message("system", "Be helpful."),
        Message(
            "user",
            (
                Text("Compare these."),
                inline(JPEG, "image/jpeg", 64, 48),
                Image("https://example.com/b.png", detail="high"),
            ),
        ),
        Message(
            "assistant",
            "",
            tool_calls=(
                ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'),
                ToolCall("toolu_2", "get_weather", '{"city":"Rome"}'),
            ),
        ),
        Message("tool", "18C", tool_call_id="toolu_1"),
        Message("tool", (Text("21C"),), tool_call_id="toolu_2"),
        Message("user", "And now?"),
        max_tokens=300,
        temperature=0.5,
        top_p=0.9,
        stop=("END",),
        tools=(weather, Tool("ping")),
        tool_choice="required",
        user="user-42",
        stream=True,
    )
    assert build(chat) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 300,
        "system": "Be helpful.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare these."},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": JPEG_B64},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/b.png"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_2",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [{"type": "text", "text": "21C"}],
                    },
                    {"type": "text", "text": "And now?"},
                ],
            },
        ],
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_p": 0.9,
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather for a city.",
                "input_schema": weather.parameters,
            },
            {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
        ],
        "tool_choice": {"type": "any"},
        "metadata": {"user_id": "user-42"},
        "stream": True,
    }


def test_same_role_turns_merge_and_tool_results_move_first() -> None:
    chat = request(
        Message("user", "First."),
        Message("user", (Text("Second."), Text(""), Text(" \n "))),
        Message("assistant", None, tool_calls=(ToolCall("t1", "f", "{}"),)),
        Message("user", "Meanwhile..."),
        Message("tool", "done", tool_call_id="t1"),
        Message("assistant", "Answer."),
        Message("assistant", "More."),
    )
    turns = build(chat)["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]
    assert turns[0]["content"] == [
        {"type": "text", "text": "First."},
        {"type": "text", "text": "Second."},
    ]
    assert [b["type"] for b in turns[2]["content"]] == ["tool_result", "text"]
    assert turns[3]["content"] == [
        {"type": "text", "text": "Answer."},
        {"type": "text", "text": "More."},
    ]


def test_empty_assistant_turn_is_dropped_and_neighbours_merge() -> None:
    chat = request(Message("user", "a"), Message("assistant", ""), Message("user", "b"))
    assert build(chat)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_system_messages_anywhere_are_hoisted() -> None:
    chat = request(Message("user", "Hi"), Message("system", "Late rule."))
    body = build(chat)
    assert body["system"] == "Late rule."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (NamedToolChoice("f"), None, {"type": "tool", "name": "f"}),
        (None, None, None),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            NamedToolChoice("f"),
            False,
            {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        ),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, expected: dict[str, Any] | None) -> None:
    chat = request(
        Message("user", "x"), tools=(Tool("f"),), tool_choice=choice, parallel_tool_calls=parallel
    )
    assert build(chat).get("tool_choice") == expected


def test_tool_choice_without_tools_is_not_sent() -> None:
    assert "tool_choice" not in build(request(Message("user", "x"), tool_choice="none"))


def test_json_object_mode_is_a_system_instruction() -> None:
    chat = request(
        Message("system", "Be brief."),
        Message("user", "List two colours as json."),
        response_format=ResponseFormat("json_object"),
    )
    body = build(chat)
    assert "response_format" not in body
    assert body["system"].startswith("Be brief.\n\nRespond with a single JSON object")
    assert "schema" not in body["system"]


def test_json_schema_mode_puts_the_schema_in_the_instruction() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    chat = request(
        Message("user", "Go."),
        response_format=ResponseFormat("json_schema", {"name": "x", "schema": schema}),
    )
    system = build(chat)["system"]
    assert system.startswith("Respond with a single JSON object")
    assert system.endswith(json.dumps(schema, separators=(",", ":")))


def test_text_response_format_adds_nothing() -> None:
    chat = request(Message("user", "Go."), response_format=ResponseFormat("text"))
    assert "system" not in build(chat)


def test_openai_only_fields_and_extras_are_not_forwarded() -> None:
    chat = request(
        Message("user", "x"),
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        n=1,
        include_usage=True,
        extra={"logit_bias": msgspec.Raw(b"{}"), "store": msgspec.Raw(b"true")},
    )
    body = build(chat)
    assert set(body) == {"model", "max_tokens", "messages"}


def test_n_above_one_is_refused() -> None:
    with pytest.raises(UnsupportedCapabilityError) as caught:
        PROVIDER.build_request(request(Message("user", "x"), n=2), TARGET)
    assert caught.value.param == "n"


@pytest.mark.parametrize(
    ("arguments", "param_suffix"),
    [("{not json", "function.arguments"), ("[1, 2]", "function.arguments")],
)
def test_invalid_tool_arguments_are_a_clear_400(arguments: str, param_suffix: str) -> None:
    chat = request(
        Message("user", "x"),
        Message(
            "assistant", None, tool_calls=(ToolCall("t", "f", "{}"), ToolCall("u", "f", arguments))
        ),
    )
    with pytest.raises(InvalidRequestError) as caught:
        PROVIDER.build_request(chat, TARGET)
    assert caught.value.param == f"messages[1].tool_calls[1].{param_suffix}"
    assert caught.value.status == 400


def test_empty_tool_arguments_become_an_empty_object() -> None:
    chat = request(
        Message("user", "x"),
        Message("assistant", None, tool_calls=(ToolCall("t", "f", ""),)),
        Message("tool", "", tool_call_id="t"),
    )
    turns = build(chat)["messages"]
    assert turns[1]["content"][0]["input"] == {}
    assert turns[2]["content"] == [{"type": "tool_result", "tool_use_id": "t"}]


def test_tool_message_without_id_is_refused() -> None:
    chat = request(Message("user", "x"), Message("tool", "r"))
    with pytest.raises(InvalidRequestError) as caught:
        PROVIDER.build_request(chat, TARGET)
    assert caught.value.param == "messages[1].tool_call_id"


def test_tool_result_may_carry_an_image() -> None:
    chat = request(
        Message("user", "x"),
        Message("assistant", None, tool_calls=(ToolCall("t", "shot", "{}"),)),
        Message("tool", (Text("screenshot"), inline(JPEG, "image/jpeg", 64, 48)), tool_call_id="t"),
    )
    result = build(chat)["messages"][2]["content"][0]
    assert [b["type"] for b in result["content"]] == ["text", "image"]


def test_jpg_alias_is_never_forwarded() -> None:
    chat = request(Message("user", (inline(JPEG, "image/jpg", 64, 48),)))
    source = build(chat)["messages"][0]["content"][0]["source"]
    assert source["media_type"] == "image/jpeg"
    assert source["data"] == JPEG_B64


def test_data_uri_without_intake_is_still_translated() -> None:
    chat = request(Message("user", (Image(f"data:image/jpg;base64,{JPEG_B64}"),)))
    source = build(chat)["messages"][0]["content"][0]["source"]
    assert source == {"type": "base64", "media_type": "image/jpeg", "data": JPEG_B64}


def test_malformed_data_uri_is_a_decode_error() -> None:
    chat = request(Message("user", (Image("data:,abc"),)))
    with pytest.raises(ImageDecodeError):
        PROVIDER.build_request(chat, TARGET)


def test_image_types_anthropic_refuses_are_reported() -> None:
    chat = request(Message("user", (Text("x"), inline(b"BM....", "image/bmp", 2, 2))))
    with pytest.raises(UnsupportedImageFormatError) as caught:
        PROVIDER.build_request(chat, TARGET)
    assert caught.value.param == "messages[0].content[1].image_url.url"


def test_images_outside_user_and_tool_turns_are_refused() -> None:
    chat = request(Message("user", "x"), Message("assistant", (Image("https://a.example/x.png"),)))
    with pytest.raises(InvalidRequestError):
        PROVIDER.build_request(chat, TARGET)
    chat = request(Message("system", (Image("https://a.example/x.png"),)), Message("user", "x"))
    with pytest.raises(InvalidRequestError) as caught:
        PROVIDER.build_request(chat, TARGET)
    assert caught.value.param == "messages[0].content[0]"


def test_pdf_files_become_documents_and_other_inputs_are_refused() -> None:
    pdf = base64.b64encode(b"%PDF-1.4 ...").decode()
    chat = request(Message("user", (File(file_data=f"data:application/pdf;base64,{pdf}"),)))
    block = build(chat)["messages"][0]["content"][0]
    assert block == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
    }
    for part in (File(file_id="file-1"), Audio("AAAA", "wav")):
        with pytest.raises(UnsupportedCapabilityError):
            PROVIDER.build_request(request(Message("user", (part,))), TARGET)


@pytest.mark.parametrize(
    "messages",
    [
        (Message("system", "only a system prompt"),),
        (Message("assistant", "Hello! How can I help?"), Message("user", "Hi")),
    ],
)
def test_conversations_anthropic_cannot_take(messages: tuple[Message, ...]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        PROVIDER.build_request(request(*messages), TARGET)
    assert caught.value.param == "messages"


def test_base_url_and_missing_key() -> None:
    settings = ProviderSettings(name="proxy", kind="anthropic", base_url="http://proxy:8080/")
    upstream = PROVIDER.build_request(request(Message("user", "x")), Target(settings, "m"))
    assert upstream.url == "http://proxy:8080/v1/messages"
    assert "x-api-key" not in upstream.headers


def test_configured_headers_may_override_the_version() -> None:
    settings = ProviderSettings(
        name="beta",
        kind="anthropic",
        api_key="k",
        headers={"anthropic-version": "2024-01-01", "anthropic-beta": "files-api-2025-04-14"},
    )
    headers = PROVIDER.build_request(request(Message("user", "x")), Target(settings, "m")).headers
    assert headers["anthropic-version"] == "2024-01-01"
    assert headers["anthropic-beta"] == "files-api-2025-04-14"


# ---------------------------------------------------------------------------------------------
# Responses

TEXT_MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Hello "},
        {"type": "text", "text": "world."},
    ],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 100,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 300,
        "output_tokens": 7,
        "output_tokens_details": {"thinking_tokens": 3},
    },
}
TOOL_MESSAGE = {
    "id": "msg_02",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [
        {
            "type": "tool_use",
            "id": "toolu_a",
            "name": "get_weather",
            "input": {"city": "Paris", "n": [1, 2]},
        },
        {"type": "tool_use", "id": "toolu_b", "name": "ping", "input": {}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 10, "output_tokens": 30},
}


def test_parses_a_text_message() -> None:
    anthropic.types.Message.model_validate(TEXT_MESSAGE)  # the fixture is a real Message
    response = PROVIDER.parse_response(json.dumps(TEXT_MESSAGE, indent=2).encode(), TARGET)
    assert response.id == "msg_01"
    assert response.model == "claude-sonnet-4-5-20250929"
    assert response.created > 0
    (choice,) = response.choices
    assert choice.content == "Hello world."
    assert choice.tool_calls is None
    assert choice.finish_reason == "stop"
    assert response.usage == Usage(
        prompt_tokens=420,
        completion_tokens=7,
        cached_tokens=300,
        cache_creation_tokens=20,
        reasoning_tokens=3,
    )


def test_parses_tool_use_blocks_with_compact_arguments() -> None:
    anthropic.types.Message.model_validate(TOOL_MESSAGE)
    response = PROVIDER.parse_response(json.dumps(TOOL_MESSAGE, indent=2).encode(), TARGET)
    (choice,) = response.choices
    assert choice.content is None
    assert choice.finish_reason == "tool_calls"
    assert choice.tool_calls == (
        ToolCall("toolu_a", "get_weather", '{"city":"Paris","n":[1,2]}'),
        ToolCall("toolu_b", "ping", "{}"),
    )
    assert response.usage == Usage(prompt_tokens=10, completion_tokens=30)


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("something_new", "stop"),
        (None, None),
    ],
)
def test_stop_reasons(stop_reason: str | None, finish: str | None) -> None:
    body = {**TEXT_MESSAGE, "stop_reason": stop_reason}
    assert (
        PROVIDER.parse_response(json.dumps(body).encode(), TARGET).choices[0].finish_reason
        == finish
    )


def test_empty_content_is_an_empty_string() -> None:
    body = {**TEXT_MESSAGE, "content": [], "stop_reason": "max_tokens"}
    choice = PROVIDER.parse_response(json.dumps(body).encode(), TARGET).choices[0]
    assert choice.content == ""
    assert choice.finish_reason == "length"


def test_malformed_body_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError) as caught:
        PROVIDER.parse_response(b"<html>", TARGET)
    assert caught.value.provider == "claude"


def test_error_envelope_in_a_200_is_classified() -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    with pytest.raises(UpstreamUnavailableError):
        PROVIDER.parse_response(body, TARGET)


# ---------------------------------------------------------------------------------------------
# Streams

TEXT_STREAM = (
    sse(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_s",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-x",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 472, "output_tokens": 2, "cache_read_input_tokens": 28},
            },
        },
    )
    + sse(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    + sse("ping", {"type": "ping"})
    + sse(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
    )
    + sse(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": " there"},
        },
    )
    + sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    + sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 15},
        },
    )
    + sse("message_stop", {"type": "message_stop"})
)


def test_text_stream() -> None:
    events, parser = feed(TEXT_STREAM)
    assert events == [
        Delta(index=0, role="assistant", content=""),
        Delta(index=0, content="Hello"),
        Delta(index=0, content=" there"),
        Finish(0, "stop"),
        UsageReport(Usage(prompt_tokens=500, completion_tokens=15, cached_tokens=28)),
    ]
    assert parser.done
    assert (parser.id, parser.model) == ("msg_s", "claude-x")


def test_done_only_after_message_stop() -> None:
    parser = PROVIDER.stream_parser(TARGET)
    events = SseDecoder().feed(TEXT_STREAM.encode())
    for event in events[:-1]:
        parser.feed(event)
        assert not parser.done
    parser.feed(events[-1])
    assert parser.done


def _tool_stream() -> str:
    def delta(index: int, partial: str) -> str:
        body = {"type": "input_json_delta", "partial_json": partial}
        return sse(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": body}
        )

    def start(index: int, block: dict[str, Any]) -> str:
        return sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )

    def stop(index: int) -> str:
        return sse("content_block_stop", {"type": "content_block_stop", "index": index})

    head = TEXT_STREAM.split("event: content_block_start")[0]
    return (
        head
        + start(0, {"type": "text", "text": "Let me check."})
        + stop(0)
        + start(1, {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}})
        + delta(1, "")
        + delta(1, '{"city": ')
        + delta(1, '"Paris"}')
        + stop(1)
        + start(2, {"type": "tool_use", "id": "toolu_b", "name": "ping", "input": {}})
        + delta(2, "")
        + stop(2)
        + sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 40},
            },
        )
        + sse("message_stop", {"type": "message_stop"})
    )


def test_tool_use_stream_counts_tool_blocks_from_zero() -> None:
    events, parser = feed(_tool_stream())
    calls = [
        call
        for event in events
        if isinstance(event, Delta) and event.tool_calls
        for call in event.tool_calls
    ]
    assert calls == [
        ToolCallDelta(0, id="toolu_a", name="get_weather", arguments=""),
        ToolCallDelta(0, arguments='{"city": '),
        ToolCallDelta(0, arguments='"Paris"}'),
        ToolCallDelta(1, id="toolu_b", name="ping", arguments=""),
        ToolCallDelta(1, arguments="{}"),
    ]
    assert events[0] == Delta(index=0, role="assistant", content="")
    assert events[1] == Delta(index=0, content="Let me check.")
    assert [e for e in events if isinstance(e, Finish)] == [Finish(0, "tool_calls")]
    assert events[-1] == UsageReport(
        Usage(prompt_tokens=500, completion_tokens=40, cached_tokens=28)
    )
    assert parser.done


def test_pings_and_unknown_events_are_ignored() -> None:
    parser = PROVIDER.stream_parser(TARGET)
    assert parser.feed(SseEvent("ping", '{"type":"ping"}')) == []
    assert parser.feed(SseEvent("ping", "")) == []
    assert parser.feed(SseEvent("future_event", '{"type":"future_event","x":1}')) == []
    assert not parser.done


def test_thinking_and_signature_deltas_become_thoughts() -> None:
    parser = PROVIDER.stream_parser(TARGET)

    def delta(body: dict[str, str]) -> list[StreamEvent]:
        event = {"type": "content_block_delta", "index": 0, "delta": body}
        return parser.feed(SseEvent("content_block_delta", json.dumps(event)))

    assert delta({"type": "thinking_delta", "thinking": "hm"}) == [
        Delta(index=0, role="assistant", content=""),
        Delta(index=0, thought=Thought("hm")),
    ]
    assert delta({"type": "signature_delta", "signature": "c2ln"}) == [
        Delta(index=0, thought=Thought(signature="c2ln"))
    ]
    start = {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "redacted_thinking", "data": "b3BhcXVl"},
    }
    assert parser.feed(SseEvent("content_block_start", json.dumps(start))) == [
        Delta(index=0, thought=Thought(redacted="b3BhcXVl"))
    ]


@pytest.mark.parametrize(
    ("error_type", "expected", "status"),
    [
        ("overloaded_error", UpstreamUnavailableError, 529),
        ("api_error", UpstreamUnavailableError, 500),
        ("rate_limit_error", UpstreamRateLimitedError, 429),
        ("timeout_error", UpstreamTimeoutError, 504),
        ("invalid_request_error", UpstreamRejectedError, 400),
        ("billing_error", UpstreamQuotaError, 402),
        ("mystery_error", UpstreamUnavailableError, 500),
    ],
)
def test_in_band_stream_errors_raise_the_mapped_error(
    error_type: str, expected: type[UpstreamError], status: int
) -> None:
    events, parser = feed(TEXT_STREAM.split("event: content_block_stop")[0])
    assert Delta(index=0, content=" there") in events
    data = {"type": "error", "error": {"type": error_type, "message": "Overloaded"}}
    with pytest.raises(UpstreamError) as caught:
        parser.feed(SseEvent("error", json.dumps(data)))
    assert type(caught.value) is expected
    assert caught.value.upstream_status == status
    assert caught.value.provider == "claude"


def test_malformed_stream_event_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        PROVIDER.stream_parser(TARGET).feed(SseEvent("message_start", "{oops"))


# ---------------------------------------------------------------------------------------------
# Errors


def _envelope(kind: str, message: str) -> bytes:
    return json.dumps(
        {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}
    ).encode()


@pytest.mark.parametrize(
    ("status", "kind", "expected", "client_status"),
    [
        (400, "invalid_request_error", UpstreamRejectedError, 400),
        (404, "not_found_error", UpstreamRejectedError, 404),
        (413, "request_too_large", UpstreamRejectedError, 413),
        (429, "rate_limit_error", UpstreamRateLimitedError, 429),
        (402, "billing_error", UpstreamQuotaError, 429),
        (500, "api_error", UpstreamUnavailableError, 503),
        (529, "overloaded_error", UpstreamUnavailableError, 503),
        (504, "timeout_error", UpstreamTimeoutError, 504),
        (503, "api_error", UpstreamUnavailableError, 503),
        (409, "invalid_request_error", UpstreamRejectedError, 409),
    ],
)
def test_error_mapping(
    status: int, kind: str, expected: type[UpstreamError], client_status: int
) -> None:
    error = PROVIDER.parse_error(status, _envelope(kind, "Something specific."), {}, TARGET)
    assert type(error) is expected
    assert error.upstream_status == status
    assert error.status_code == client_status
    assert error.provider == "claude"
    assert "Something specific." in error.message


def test_invalid_request_passes_the_message_without_a_param() -> None:
    message = (
        "messages.0.content.1.image.source.base64.data: Image does not match the provided media "
        "type image/png"
    )
    error = PROVIDER.parse_error(400, _envelope("invalid_request_error", message), {}, TARGET)
    assert isinstance(error, UpstreamRejectedError)
    assert message in error.message
    assert error.param is None
    assert not error.retryable


@pytest.mark.parametrize(
    ("status", "kind"), [(401, "authentication_error"), (403, "permission_error")]
)
def test_credential_errors_never_echo_the_provider(status: int, kind: str) -> None:
    body = _envelope(kind, "invalid x-api-key sk-ant-secret")
    error = PROVIDER.parse_error(status, body, {}, TARGET)
    assert type(error) is UpstreamError
    assert error.status_code == 502
    assert "sk-ant" not in error.message
    assert "x-api-key" not in error.message
    assert str(status) in error.message


def test_rate_limit_keeps_only_retry_headers() -> None:
    headers = {
        "Retry-After": "7",
        "retry-after-ms": "7000",
        "anthropic-ratelimit-requests-remaining": "0",
        "request-id": "req_1",
    }
    error = PROVIDER.parse_error(429, _envelope("rate_limit_error", "slow down"), headers, TARGET)
    assert isinstance(error, UpstreamRateLimitedError)
    assert error.headers == {"retry-after": "7", "retry-after-ms": "7000"}
    assert error.retryable


def test_quota_is_never_retried() -> None:
    error = PROVIDER.parse_error(402, _envelope("billing_error", "credit too low"), {}, TARGET)
    assert isinstance(error, UpstreamQuotaError)
    assert not error.retryable


def test_non_json_error_bodies_are_quoted_briefly() -> None:
    html = b"<html><body>413 Request Entity Too Large</body></html>" + b" " * 2000
    error = PROVIDER.parse_error(413, html, {}, TARGET)
    assert isinstance(error, UpstreamRejectedError)
    assert error.status_code == 413
    assert "413 Request Entity Too Large" in error.message
    assert len(error.message) < 600
    empty = PROVIDER.parse_error(529, b"", {}, TARGET)
    assert isinstance(empty, UpstreamUnavailableError)
    assert "no message" in empty.message


def test_string_error_field_is_used_as_the_message() -> None:
    error = PROVIDER.parse_error(400, b'{"error": "bad thing"}', {}, TARGET)
    assert isinstance(error, UpstreamRejectedError)
    assert "bad thing" in error.message


def test_stream_usage_takes_the_latest_cumulative_counts() -> None:
    parser = PROVIDER.stream_parser(TARGET)
    start = {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 9}}}
    parser.feed(SseEvent("message_start", json.dumps(start)))
    for output in (3, 11):
        usage = {"output_tokens": output, "output_tokens_details": {"thinking_tokens": output - 1}}
        delta = {"type": "message_delta", "delta": {"stop_reason": None}, "usage": usage}
        assert parser.feed(SseEvent("message_delta", json.dumps(delta))) == []
    events = parser.feed(SseEvent("message_stop", '{"type":"message_stop"}'))
    assert events == [
        UsageReport(Usage(prompt_tokens=9, completion_tokens=11, reasoning_tokens=10))
    ]
