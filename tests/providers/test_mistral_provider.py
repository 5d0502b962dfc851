"""The Mistral adapter: golden bodies, tool call ids, response and stream parsing, errors.

Every built body is checked three ways: by the ``mistralai`` SDK's request model
(``ChatCompletionRequest`` / ``ChatCompletionStreamRequest``, round-tripped so an unknown
field shows up as a difference), by the strict rules that model leaves out (its content
union accepts unknown chunks, its tool call ids are any string), and by the emulator's
validator, which answers like Mistral.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
import pytest
from mistralai.client.models import ChatCompletionRequest as SdkRequest
from mistralai.client.models import ChatCompletionStreamRequest as SdkStreamRequest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from aperture.emulator import mistral as mistral_emulator
from aperture.emulator.mistral_request import IMAGE_MIMES, MistralError, parse_chat_request
from aperture.errors import (
    InvalidRequestError,
    UnsupportedCapabilityError,
    UpstreamError,
    UpstreamQuotaError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from aperture.images.limits import limits_for
from aperture.model import (
    Audio,
    ChatRequest,
    Delta,
    Finish,
    Image,
    InlineImage,
    Message,
    NamedToolChoice,
    ResponseFormat,
    StreamEvent,
    Target,
    Text,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
    Video,
)
from aperture.providers.base import Provider
from aperture.providers.mistral import DEFAULT_BASE_URL, MistralProvider, mistral_tool_call_id
from aperture.settings import ProviderSettings
from aperture.upstream import SseDecoder, SseEvent
from tests.sample_images import jpeg, png

PROVIDER = MistralProvider()
SETTINGS = ProviderSettings(name="mis", kind="mistral", api_key="mis-secret")
TARGET = Target(SETTINGS, "mistral-medium-latest")
JPEG = jpeg(64, 48)
PNG = png(32, 16)
WEATHER = Tool(
    name="weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


# ---------------------------------------------------------------------------------------------
# Helpers


def inline(data: bytes, mime: str, width: int, height: int, detail: Any = None) -> Image:
    prefix = f"data:{mime};base64,"
    values: dict[str, Any] = {
        "mime": mime,
        "width": width,
        "height": height,
        "size_bytes": len(data),
        "frames": 1,
        "payload_offset": len(prefix),
    }
    fields = InlineImage.__struct_fields__
    info = InlineImage(**{k: v for k, v in values.items() if k in fields})
    return Image(prefix + base64.b64encode(data).decode(), detail=detail, inline=info)


def request(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model="mis-vision", messages=messages, **fields)


def build(chat: ChatRequest, target: Target = TARGET) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(PROVIDER.build_request(chat, target).body)
    assert_valid(body)
    return body


def assert_valid(body: dict[str, Any]) -> None:
    """The SDK's model, the strict rules it leaves out, and the emulator's validator."""
    model = SdkStreamRequest if body.get("stream") else SdkRequest
    typed = model.model_validate(body)
    assert typed.model_dump(by_alias=True, exclude_unset=True) == body
    assert_strict(body)
    try:
        parse_chat_request(msgspec.json.encode(body))
    except MistralError as error:  # pragma: no cover - the message is the diagnosis
        pytest.fail(f"the emulator refused the body: {error.message}")


def assert_strict(body: dict[str, Any]) -> None:
    assert "seed" not in body and "safe_prompt" not in body and "user" not in body
    assert body.get("tool_choice") in (None, "auto", "none", "any") or isinstance(
        body["tool_choice"], dict
    )
    for message in body["messages"]:
        for call in message.get("tool_calls", []):
            assert len(call["id"]) == 9 and call["id"].isascii() and call["id"].isalnum()
        if message["role"] == "tool":
            assert len(message["tool_call_id"]) == 9 and message["tool_call_id"].isalnum()
        content = message.get("content")
        for part in content if isinstance(content, list) else []:
            assert part["type"] in ("text", "image_url", "input_audio")
            if part["type"] == "text":
                assert "data:image" not in part["text"], "an image flattened into text"
            if part["type"] == "image_url":
                spec = part["image_url"]
                url = spec if isinstance(spec, str) else spec["url"]
                assert isinstance(spec, str) or set(spec) == {"url", "detail"}
                if url.startswith("data:"):
                    assert url[5:].split(";")[0] in IMAGE_MIMES


def image_urls(body: dict[str, Any]) -> list[Any]:
    return [
        part["image_url"]
        for message in body["messages"]
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part["type"] == "image_url"
    ]


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    body = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "mistral-medium-latest",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def events_of(raw: bytes, chunk_size: int = 13) -> list[StreamEvent]:
    decoder, parser = SseDecoder(), PROVIDER.stream_parser(TARGET)
    events: list[StreamEvent] = []
    for start in range(0, len(raw), chunk_size):
        for sse in decoder.feed(raw[start : start + chunk_size]):
            events += parser.feed(sse)
    assert parser.done
    return events


USAGE = {"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24}


# ---------------------------------------------------------------------------------------------
# Requests


def test_fulfils_the_provider_protocol() -> None:
    provider: Provider = PROVIDER  # checked by mypy
    assert provider.stream_framing == "sse"
    assert provider.stream_ends_with_body is False


def test_text_request_golden_body_url_and_headers() -> None:
    chat = request(Message("developer", "Be brief."), Message("user", "Hi"), seed=42, user="u1")
    upstream = PROVIDER.build_request(chat, TARGET)
    assert upstream.url == f"{DEFAULT_BASE_URL}/v1/chat/completions"
    assert upstream.headers == {
        "Content-Type": "application/json",
        "Authorization": "Bearer mis-secret",
    }
    assert build(chat) == {
        "model": "mistral-medium-latest",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "random_seed": 42,
        "stream": False,
    }


def test_base_url_with_or_without_v1() -> None:
    for base in ("https://mistral.example", "https://mistral.example/v1/"):
        settings = ProviderSettings(name="m", kind="mistral", base_url=base)
        url = PROVIDER.build_request(request(Message("user", "x")), Target(settings, "m")).url
        assert url == "https://mistral.example/v1/chat/completions"


def test_one_image_uses_the_string_form() -> None:
    image = inline(JPEG, "image/jpeg", 64, 48)
    (message,) = build(request(Message("user", (Text("What is this?"), image))))["messages"]
    assert message["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": image.url},
    ]


def test_detail_uses_the_object_form_and_urls_pass_through() -> None:
    parts = (inline(PNG, "image/png", 32, 16, detail="high"), Image("https://x.test/a.png"))
    assert image_urls(build(request(Message("user", parts)))) == [
        {"url": parts[0].url, "detail": "high"},
        "https://x.test/a.png",
    ]


def test_image_parts_reach_the_wire_as_images_never_as_text() -> None:
    # A gateway once replaced Mistral image blocks with a stringified placeholder.
    images = [inline(JPEG, "image/jpeg", 64, 48), inline(PNG, "image/png", 32, 16)]
    chat = request(
        Message("user", (Text("First"), images[0])),
        Message("assistant", "Seen."),
        Message("user", (Text("Second"), images[1], Text("compare"))),
    )
    body = build(chat)
    assert image_urls(body) == [image.url for image in images]
    texts = [
        part["text"]
        for message in body["messages"]
        if isinstance(message["content"], list)
        for part in message["content"]
        if part["type"] == "text"
    ]
    assert texts == ["First", "Second", "compare"]
    raw = PROVIDER.build_request(chat, TARGET).body
    assert raw.count(b'"type":"image_url"') == 2


def test_eight_images_is_the_documented_cap() -> None:
    assert limits_for("mistral").max_images == 8
    eight = tuple(inline(PNG, "image/png", 32, 16) for _ in range(8))
    assert len(image_urls(build(request(Message("user", (Text("x"), *eight)))))) == 8


def test_images_only_where_mistral_takes_them() -> None:
    bad = request(Message("user", "x"), Message("assistant", (inline(PNG, "image/png", 32, 16),)))
    with pytest.raises(InvalidRequestError):
        PROVIDER.build_request(bad, TARGET)
    with pytest.raises(UnsupportedCapabilityError):
        PROVIDER.build_request(request(Message("user", (Video("https://v.test/a"),))), TARGET)
    audio = build(request(Message("user", (Text("hear"), Audio("UklGRg==", "wav")))))
    assert audio["messages"][0]["content"][1] == {"type": "input_audio", "input_audio": "UklGRg=="}


def test_tool_call_ids_are_mapped_to_nine_alphanumerics_consistently() -> None:
    openai_id = "call_PTLP8xhu3uwZk4l3nlnrrJha"
    mapped = mistral_tool_call_id(openai_id)
    assert len(mapped) == 9 and mapped.isascii() and mapped.isalnum()
    assert mistral_tool_call_id(openai_id) == mapped
    assert mistral_tool_call_id("D681PevKs") == "D681PevKs", "Mistral's own ids pass through"
    assert mistral_tool_call_id("call_other") != mapped
    chat = request(
        Message("user", "Weather?"),
        Message("assistant", None, tool_calls=(ToolCall(openai_id, "weather", '{"city":"P"}'),)),
        Message("tool", "18C", tool_call_id=openai_id),
        tools=(WEATHER,),
    )
    body = build(chat)
    assert body["messages"][1] == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": mapped,
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"P"}'},
            }
        ],
    }
    assert body["messages"][2] == {
        "role": "tool",
        "content": "18C",
        "tool_call_id": mapped,
        "name": "weather",
    }


def test_tools_and_tool_choice() -> None:
    base = (Message("user", "hi"),)
    body = build(request(*base, tools=(WEATHER,), tool_choice="required"))
    assert body["tool_choice"] == "any"
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather for a city",
                "parameters": WEATHER.parameters,
            },
        }
    ]
    named = build(request(*base, tools=(WEATHER,), tool_choice=NamedToolChoice("weather")))
    assert named["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    auto = build(request(*base, tools=(WEATHER,), tool_choice="auto", parallel_tool_calls=False))
    assert (auto["tool_choice"], auto["parallel_tool_calls"]) == ("auto", False)


def test_options_json_and_extra() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    chat = request(
        Message("user", "count, as JSON"),
        max_tokens=9,
        temperature=0.1,
        top_p=0.5,
        stop=("END",),
        n=2,
        presence_penalty=0.2,
        stream=True,
        response_format=ResponseFormat(
            "json_schema", {"name": "c", "schema": schema, "strict": True}
        ),
        extra={"stream_options": msgspec.Raw(b'{"include_usage":true}')},
    )
    body = build(chat)
    assert {k: v for k, v in body.items() if k not in ("model", "messages")} == {
        "max_tokens": 9,
        "temperature": 0.1,
        "top_p": 0.5,
        "stop": ["END"],
        "n": 2,
        "presence_penalty": 0.2,
        "stream": True,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "c", "schema": schema, "strict": True},
        },
    }
    plain = build(request(Message("user", "JSON"), response_format=ResponseFormat("json_object")))
    assert plain["response_format"] == {"type": "json_object"}


# ---------------------------------------------------------------------------------------------
# Responses and streams


def test_parse_text_and_chunked_content() -> None:
    message: dict[str, Any] = {"role": "assistant", "content": "Blue.", "tool_calls": None}
    body: dict[str, Any] = {
        "id": "r1",
        "object": "chat.completion",
        "created": 7,
        "model": "mistral-medium-latest",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": USAGE,
    }
    response = PROVIDER.parse_response(msgspec.json.encode(body), TARGET)
    assert (response.id, response.created, response.choices[0].content) == ("r1", 7, "Blue.")
    assert response.usage == Usage(prompt_tokens=20, completion_tokens=4)
    message["content"] = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
        {"type": "text", "text": "Blue."},
    ]
    body["choices"] = [{"index": 0, "message": message, "finish_reason": "model_length"}]
    (choice,) = PROVIDER.parse_response(msgspec.json.encode(body), TARGET).choices
    assert (choice.content, choice.finish_reason) == ("Blue.", "length")


def test_parse_tool_calls_and_error_finish() -> None:
    call = {"id": "D681PevKs", "function": {"name": "weather", "arguments": {"city": "P"}}}
    message = {"role": "assistant", "content": "", "tool_calls": [call]}
    choices = [{"index": 0, "message": message, "finish_reason": "tool_calls"}]
    body: dict[str, Any] = {"id": "r", "choices": choices}
    (choice,) = PROVIDER.parse_response(msgspec.json.encode(body), TARGET).choices
    assert choice.tool_calls == (ToolCall("D681PevKs", "weather", '{"city":"P"}'),)
    assert choice.finish_reason == "tool_calls"
    body["choices"][0]["finish_reason"] = "error"
    with pytest.raises(UpstreamUnavailableError):
        PROVIDER.parse_response(msgspec.json.encode(body), TARGET)


def test_stream_text_with_usage_on_the_last_chunk() -> None:
    raw = b"".join(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Blue"}),
            chunk({"content": " sky."}),
            chunk({"content": ""}, "stop", usage=USAGE),
            b"data: [DONE]\n\n",
        ]
    )
    assert events_of(raw) == [
        Delta(index=0, role="assistant", content=""),
        Delta(index=0, content="Blue"),
        Delta(index=0, content=" sky."),
        Finish(0, "stop"),
        UsageReport(Usage(prompt_tokens=20, completion_tokens=4)),
    ]


def test_stream_tool_calls_told_apart_by_id() -> None:
    calls = [
        {
            "id": "aaaaaaaaa",
            "function": {"name": "weather", "arguments": '{"city":"P"}'},
            "index": 0,
        },
        {
            "id": "bbbbbbbbb",
            "function": {"name": "weather", "arguments": '{"city":"R"}'},
            "index": 0,
        },
    ]
    raw = b"".join(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"tool_calls": calls}),
            chunk({"content": ""}, "tool_calls", usage=USAGE),
            b"data: [DONE]\n\n",
        ]
    )
    events = events_of(raw)
    assert events[1] == Delta(
        index=0,
        tool_calls=(
            ToolCallDelta(0, "aaaaaaaaa", "weather", '{"city":"P"}'),
            ToolCallDelta(1, "bbbbbbbbb", "weather", '{"city":"R"}'),
        ),
    )
    assert events[2] == Finish(0, "tool_calls")


def test_errors_mid_stream_raise() -> None:
    error = {"object": "error", "message": "Internal server error", "type": "x", "code": "1000"}
    parser = PROVIDER.stream_parser(TARGET)
    parser.feed(SseEvent("message", chunk({"content": "Hi"})[6:-2].decode()))
    with pytest.raises(UpstreamUnavailableError, match="Internal server error"):
        parser.feed(SseEvent("message", json.dumps(error)))
    finish_error = chunk({"content": ""}, "error")[6:-2].decode()
    with pytest.raises(UpstreamUnavailableError):
        PROVIDER.stream_parser(TARGET).feed(SseEvent("message", finish_error))
    with pytest.raises(UpstreamError, match="not valid JSON"):
        PROVIDER.stream_parser(TARGET).feed(SseEvent("message", "{nope"))


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("status", "body", "kind", "said"),
    [
        (
            400,
            b'{"object":"error","message":"Tool call id was x but must be a-z, A-Z, 0-9, with a '
            b'length of 9.","type":"invalid_function_call","param":null,"code":"3280"}',
            UpstreamRejectedError,
            "Tool call id was x",
        ),
        (
            422,
            b'{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body",'
            b'"seed"],"msg":"Extra inputs are not permitted","input":1}]},'
            b'"type":"invalid_request_message_error","param":null,"code":null}',
            UpstreamRejectedError,
            "seed: Extra inputs are not permitted",
        ),
        (422, b'{"detail":"Invalid model"}', UpstreamRejectedError, "Invalid model"),
        (404, b'{"object":"error","message":"Invalid model: x"}', UpstreamRejectedError, "x"),
        (
            429,
            b'{"object":"error","message":"Requests rate limit exceeded","type":"rate_limited"}',
            UpstreamRateLimitedError,
            "rate limit",
        ),
        (
            402,
            b'{"object":"error","message":"Customer monthly spending limit reached.",'
            b'"type":"billing_customer_monthly_spending_limit_reached","param":null,'
            b'"code":"2300","raw_status_code":402}',
            UpstreamQuotaError,
            "Customer monthly",
        ),
        (
            429,
            b'{"object":"error","message":"API budget exhausted.",'
            b'"type":"billing_api_budget_exhausted","param":null,"code":"2303"}',
            UpstreamQuotaError,
            "API budget",
        ),
        (500, b'{"object":"error","message":"Internal"}', UpstreamUnavailableError, "Internal"),
        (503, b"upstream connect error", UpstreamUnavailableError, "upstream connect"),
        (504, b'{"message":"timeout"}', UpstreamTimeoutError, "timeout"),
    ],
)
def test_error_classes(status: int, body: bytes, kind: type[UpstreamError], said: str) -> None:
    error = PROVIDER.parse_error(status, body, {"Retry-After": "4"}, TARGET)
    assert type(error) is kind
    assert said in error.message
    if kind is UpstreamRateLimitedError:
        assert error.headers == {"retry-after": "4"}


@pytest.mark.parametrize("status", [401, 403])
def test_credentials_errors_hide_the_provider_text(status: int) -> None:
    error = PROVIDER.parse_error(status, b'{"message":"Unauthorized key mis-secret"}', {}, TARGET)
    assert type(error) is UpstreamError
    assert "mis-secret" not in error.message


# ---------------------------------------------------------------------------------------------
# Against the emulator


@pytest.fixture
def emulator() -> TestClient:
    return TestClient(Starlette(routes=[Mount("/mistral", routes=mistral_emulator.routes())]))


def _send(client: TestClient, chat: ChatRequest, model: str = "mistral-medium-latest") -> Any:
    settings = ProviderSettings(
        name="mis", kind="mistral", base_url="http://testserver/mistral", api_key="k"
    )
    upstream = PROVIDER.build_request(chat, Target(settings, model))
    return client.post(upstream.url, content=upstream.body, headers=dict(upstream.headers))


def test_round_trip_through_the_emulator(emulator: TestClient) -> None:
    image = inline(JPEG, "image/jpeg", 64, 48)
    response = _send(emulator, request(Message("user", (Text("What is this?"), image))))
    assert response.status_code == 200
    (choice,) = PROVIDER.parse_response(response.content, TARGET).choices
    assert choice.content == 'Saw 1 image: #1 image/jpeg 64x48 detail=auto. Asked: "What is this?"'


def test_tool_loop_through_the_emulator_with_foreign_ids(emulator: TestClient) -> None:
    chat = request(
        Message("user", "Paris?"),
        Message("assistant", None, tool_calls=(ToolCall("call_abc_123", "weather", "{}"),)),
        Message("tool", "18C", tool_call_id="call_abc_123"),
        Message("user", "And Rome?"),
        tools=(WEATHER,),
        tool_choice="required",
        stream=True,
    )
    response = _send(emulator, chat)
    assert response.status_code == 200
    events = events_of(response.content)
    calls = [d for e in events if isinstance(e, Delta) for d in e.tool_calls or ()]
    assert calls[0].name == "weather" and len(calls[0].id or "") == 9
    assert isinstance(events[-1], UsageReport)


def test_too_many_images_refused_by_the_emulator(emulator: TestClient) -> None:
    nine = tuple(inline(PNG, "image/png", 32, 16) for _ in range(9))
    response = _send(emulator, request(Message("user", (Text("x"), *nine))))
    error = PROVIDER.parse_error(response.status_code, response.content, {}, TARGET)
    assert isinstance(error, UpstreamRejectedError)
    assert "Too many images in request. Max is 8." in error.message
