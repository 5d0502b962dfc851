"""The Cohere adapter: golden bodies, response and typed-event stream parsing, error mapping.

Every built body is checked three ways: by the ``cohere`` SDK's request types (each message
validated as ``ChatMessageV2``, tools as ``ToolV2``, ``response_format`` as
``ResponseFormatV2``, top-level fields against the SDK's ``v2.chat`` parameters), by the
strict rules those permissive types leave out, and by the emulator's validator.
"""

from __future__ import annotations

import base64
import inspect
import json
from typing import Any

import cohere
import msgspec
import pydantic
import pytest
from cohere.v2.raw_client import RawV2Client
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from aperture.emulator import cohere as cohere_emulator
from aperture.emulator.cohere_request import IMAGE_MIMES, CohereError, parse_chat_request
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
)
from aperture.providers.base import Provider
from aperture.providers.cohere import DEFAULT_BASE_URL, CohereProvider
from aperture.settings import ProviderSettings
from aperture.upstream import SseDecoder, SseEvent
from tests.sample_images import jpeg, png

PROVIDER = CohereProvider()
SETTINGS = ProviderSettings(name="co", kind="cohere", api_key="co-secret", headers={"x-t": "v"})
TARGET = Target(SETTINGS, "command-a-vision-07-2025")
JPEG = jpeg(64, 48)
PNG = png(32, 16)
WEATHER = Tool(
    name="weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
MESSAGE = pydantic.TypeAdapter(cohere.ChatMessageV2)
RESPONSE_FORMAT = pydantic.TypeAdapter(cohere.ResponseFormatV2)
SDK_FIELDS = set(inspect.signature(RawV2Client.chat).parameters) - {"self", "request_options"}


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
    return ChatRequest(model="co-vision", messages=messages, **fields)


def build(chat: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(PROVIDER.build_request(chat, TARGET).body)
    assert_valid(body)
    return body


def assert_valid(body: dict[str, Any]) -> None:
    """The SDK's types, the strict rules they leave out, and the emulator's validator."""
    assert set(body) <= SDK_FIELDS | {"stream"}
    for message in body["messages"]:
        typed = MESSAGE.validate_python(message)
        # The SDK's models allow extra fields: list the ones they know instead.
        assert set(message) <= set(type(typed).model_fields), message
        assert MESSAGE.dump_python(typed, exclude_unset=True, by_alias=True) == message
    for tool in body.get("tools", []):
        typed_tool = cohere.ToolV2.model_validate(tool)
        assert typed_tool.model_dump(exclude_unset=True) == tool
    if "response_format" in body:
        RESPONSE_FORMAT.validate_python(body["response_format"])
    assert_strict(body)
    try:
        parse_chat_request(msgspec.json.encode(body))
    except CohereError as error:  # pragma: no cover - the message is the diagnosis
        pytest.fail(f"the emulator refused the body: {error.message}")


def assert_strict(body: dict[str, Any]) -> None:
    assert isinstance(body["stream"], bool)
    assert body.get("tool_choice") in (None, "REQUIRED", "NONE")
    if "p" in body:
        assert 0.01 <= body["p"] <= 0.99
    for message in body["messages"]:
        if message["role"] == "tool":
            assert message["tool_call_id"]
        for call in message.get("tool_calls", []):
            assert isinstance(call["function"]["arguments"], str)
        content = message.get("content")
        for part in content if isinstance(content, list) else []:
            if part["type"] != "image_url":
                continue
            assert message["role"] == "user"
            spec = part["image_url"]
            assert isinstance(spec, dict), "Cohere wants the object form"
            assert set(spec) <= {"url", "detail"}
            if spec["url"].startswith("data:"):
                mime = spec["url"][5:].split(";")[0]
                assert mime in IMAGE_MIMES


def events_of(raw: bytes, chunk: int = 11) -> list[StreamEvent]:
    decoder, parser = SseDecoder(), PROVIDER.stream_parser(TARGET)
    events: list[StreamEvent] = []
    for start in range(0, len(raw), chunk):
        for sse in decoder.feed(raw[start : start + chunk]):
            events += parser.feed(sse)
    assert parser.done
    return events


def sse(kind: str, **body: Any) -> bytes:
    data = json.dumps({"type": kind, **body})
    return f"event: {kind}\ndata: {data}\n\n".encode()


USAGE = {
    "billed_units": {"input_tokens": 40, "output_tokens": 6},
    "tokens": {"input_tokens": 240, "output_tokens": 6},
    "cached_tokens": 0,
}


# ---------------------------------------------------------------------------------------------
# Requests


def test_fulfils_the_provider_protocol() -> None:
    provider: Provider = PROVIDER  # checked by mypy
    assert provider.stream_framing == "sse"
    assert provider.stream_ends_with_body is False


def test_text_request_golden_body_url_and_headers() -> None:
    chat = request(
        Message("system", "Be brief."), Message("developer", "English."), Message("user", "Hi")
    )
    upstream = PROVIDER.build_request(chat, TARGET)
    assert upstream.url == f"{DEFAULT_BASE_URL}/v2/chat"
    assert upstream.headers == {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "x-t": "v",
        "Authorization": "Bearer co-secret",
    }
    assert build(chat) == {
        "model": "command-a-vision-07-2025",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": "English."},
            {"role": "user", "content": "Hi"},
        ],
        "stream": False,
    }


def test_one_image_keeps_the_data_uri_and_detail() -> None:
    image = inline(JPEG, "image/jpeg", 64, 48, detail="low")
    (message,) = build(request(Message("user", (Text("What is this?"), image))))["messages"]
    assert message == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": image.url, "detail": "low"}},
        ],
    }


def test_several_images_and_a_url_in_order() -> None:
    parts = (
        Text("Compare"),
        inline(JPEG, "image/jpeg", 64, 48),
        inline(PNG, "image/png", 32, 16),
        Image("https://example.com/cat.png"),
    )
    (message,) = build(request(Message("user", parts)))["messages"]
    urls = [p["image_url"]["url"] for p in message["content"] if p["type"] == "image_url"]
    assert urls[0].startswith("data:image/jpeg;base64,")
    assert urls[1].startswith("data:image/png;base64,")
    assert urls[2] == "https://example.com/cat.png"


def test_image_in_history_and_text_only_roles() -> None:
    chat = request(
        Message("user", (Text("What?"), inline(PNG, "image/png", 32, 16))),
        Message("assistant", "A square."),
        Message("user", "Its colour?"),
    )
    messages = build(chat)["messages"]
    assert messages[0]["content"][1]["type"] == "image_url"
    assert messages[1] == {"role": "assistant", "content": "A square."}
    bad = request(Message("system", (inline(PNG, "image/png", 32, 16),)))
    with pytest.raises(InvalidRequestError):
        PROVIDER.build_request(bad, TARGET)
    with pytest.raises(UnsupportedCapabilityError):
        PROVIDER.build_request(request(Message("user", (Audio("AAAA", "wav"),))), TARGET)
    with pytest.raises(UnsupportedCapabilityError):
        PROVIDER.build_request(request(Message("user", "x"), n=3), TARGET)


def test_options_and_extra() -> None:
    chat = request(
        Message("user", "hi"),
        max_tokens=20,
        temperature=0.3,
        top_p=1.0,
        seed=3,
        stop=("END",),
        presence_penalty=0.1,
        user="u",
        stream=True,
        extra={"logit_bias": msgspec.Raw(b"{}")},
    )
    upstream = PROVIDER.build_request(chat, TARGET)
    assert upstream.headers["Accept"] == "text/event-stream"
    body = build(chat)
    assert {k: v for k, v in body.items() if k not in ("model", "messages")} == {
        "max_tokens": 20,
        "temperature": 0.3,
        "p": 0.99,
        "seed": 3,
        "stop_sequences": ["END"],
        "presence_penalty": 0.1,
        "stream": True,
    }


def test_json_mode_and_schema() -> None:
    asked = request(Message("user", "JSON please"), response_format=ResponseFormat("json_object"))
    assert build(asked)["response_format"] == {"type": "json_object"}
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    spec = ResponseFormat("json_schema", {"name": "n", "schema": schema})
    body = build(request(Message("user", "count"), response_format=spec))
    assert body["response_format"] == {"type": "json_object", "json_schema": schema}


def test_tools_tool_plan_and_results() -> None:
    call = ToolCall("weather_1a2b", "weather", '{"city":"Paris"}')
    chat = request(
        Message("user", "Weather in Paris?"),
        Message("assistant", "I will look it up.", tool_calls=(call,)),
        Message("tool", "18C", tool_call_id="weather_1a2b"),
        tools=(WEATHER,),
        tool_choice="required",
    )
    body = build(chat)
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
    assert body["tool_choice"] == "REQUIRED"
    assert body["messages"][1] == {
        "role": "assistant",
        "tool_plan": "I will look it up.",
        "tool_calls": [
            {
                "id": "weather_1a2b",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "weather_1a2b", "content": "18C"}


def test_tool_choice_mapping() -> None:
    other = Tool(name="time", strict=True)
    base = (Message("user", "hi"),)
    none = build(request(*base, tools=(WEATHER, other), tool_choice="none"))
    assert none["tool_choice"] == "NONE" and none["strict_tools"] is True
    assert "tool_choice" not in build(request(*base, tools=(WEATHER,), tool_choice="auto"))
    named = build(request(*base, tools=(WEATHER, other), tool_choice=NamedToolChoice("weather")))
    assert [t["function"]["name"] for t in named["tools"]] == ["weather"]
    assert named["tool_choice"] == "REQUIRED" and "strict_tools" not in named
    with pytest.raises(InvalidRequestError):
        PROVIDER.build_request(request(*base, tool_choice=NamedToolChoice("x")), TARGET)


# ---------------------------------------------------------------------------------------------
# Responses and streams


def test_parse_text_response() -> None:
    body = {
        "id": "c0ffee",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "Red."}]},
        "finish_reason": "COMPLETE",
        "usage": USAGE,
    }
    response = PROVIDER.parse_response(msgspec.json.encode(body), TARGET)
    assert (response.id, response.model) == ("c0ffee", "command-a-vision-07-2025")
    (choice,) = response.choices
    assert (choice.content, choice.finish_reason) == ("Red.", "stop")
    assert response.usage == Usage(prompt_tokens=40, completion_tokens=6, cached_tokens=0)


def test_parse_tool_calls_and_finish_reasons() -> None:
    call = {"id": "w1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    message = {"role": "assistant", "tool_plan": "Checking.", "tool_calls": [call]}
    body = {"id": "x", "message": message, "finish_reason": "TOOL_CALL"}
    (choice,) = PROVIDER.parse_response(msgspec.json.encode(body), TARGET).choices
    assert choice.content == "Checking."
    assert choice.tool_calls == (ToolCall("w1", "weather", "{}"),)
    assert choice.finish_reason == "tool_calls"
    cut = {"id": "x", "message": {"content": []}, "finish_reason": "MAX_TOKENS"}
    (choice,) = PROVIDER.parse_response(msgspec.json.encode(cut), TARGET).choices
    assert (choice.content, choice.finish_reason) == ("", "length")
    for reason, kind in (("ERROR", UpstreamUnavailableError), ("TIMEOUT", UpstreamTimeoutError)):
        failed = {"id": "x", "message": {"content": []}, "finish_reason": reason}
        with pytest.raises(kind):
            PROVIDER.parse_response(msgspec.json.encode(failed), TARGET)


def test_stream_text() -> None:
    raw = b"".join(
        [
            sse("message-start", id="m1", delta={"message": {"role": "assistant", "content": []}}),
            sse("content-start", index=0, delta={"message": {"content": {"type": "text"}}}),
            sse("content-delta", index=0, delta={"message": {"content": {"text": "Red"}}}),
            sse("content-delta", index=0, delta={"message": {"content": {"text": " square."}}}),
            sse("content-end", index=0),
            sse("message-end", delta={"finish_reason": "COMPLETE", "usage": USAGE}),
            b"data: [DONE]\n\n",
        ]
    )
    assert events_of(raw) == [
        Delta(index=0, role="assistant", content=""),
        Delta(index=0, content="Red"),
        Delta(index=0, content=" square."),
        Finish(0, "stop"),
        UsageReport(Usage(prompt_tokens=40, completion_tokens=6, cached_tokens=0)),
    ]


def test_stream_tool_plan_and_tool_call_deltas() -> None:
    head = {"id": "w1", "type": "function", "function": {"name": "weather", "arguments": ""}}
    raw = b"".join(
        [
            sse("message-start", id="m1", delta={"message": {"role": "assistant"}}),
            sse("tool-plan-delta", delta={"message": {"tool_plan": "I will check."}}),
            sse("tool-call-start", index=0, delta={"message": {"tool_calls": head}}),
            sse("tool-call-delta", index=0, delta=_args('{"city":')),
            sse("tool-call-delta", index=0, delta=_args('"Paris"}')),
            sse("tool-call-end", index=0),
            sse("message-end", delta={"finish_reason": "TOOL_CALL", "usage": USAGE}),
        ]
    )
    events = events_of(raw)
    assert events[:5] == [
        Delta(index=0, role="assistant", content=""),
        Delta(index=0, content="I will check."),
        Delta(index=0, tool_calls=(ToolCallDelta(0, "w1", "weather", ""),)),
        Delta(index=0, tool_calls=(ToolCallDelta(0, arguments='{"city":'),)),
        Delta(index=0, tool_calls=(ToolCallDelta(0, arguments='"Paris"}'),)),
    ]
    assert events[5] == Finish(0, "tool_calls")


def _args(piece: str) -> dict[str, Any]:
    return {"message": {"tool_calls": {"function": {"arguments": piece}}}}


def test_error_mid_stream_raises() -> None:
    parser = PROVIDER.stream_parser(TARGET)
    parser.feed(SseEvent("message-start", json.dumps({"type": "message-start"})))
    end = {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "boom inside"}}
    with pytest.raises(UpstreamUnavailableError, match="boom inside"):
        parser.feed(SseEvent("message-end", json.dumps(end)))
    with pytest.raises(UpstreamUnavailableError, match="overloaded"):
        PROVIDER.stream_parser(TARGET).feed(SseEvent("message", '{"message":"overloaded"}'))
    with pytest.raises(UpstreamError, match="not valid JSON"):
        PROVIDER.stream_parser(TARGET).feed(SseEvent("content-delta", "{oops"))


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, UpstreamRejectedError),
        (404, UpstreamRejectedError),
        (422, UpstreamRejectedError),
        (402, UpstreamQuotaError),
        (429, UpstreamRateLimitedError),
        (499, UpstreamUnavailableError),
        (500, UpstreamUnavailableError),
        (503, UpstreamUnavailableError),
        (504, UpstreamTimeoutError),
    ],
)
def test_error_classes(status: int, kind: type[UpstreamError]) -> None:
    body = b'{"id":"e1","message":"invalid request: p must be between 0.01 and 0.99"}'
    error = PROVIDER.parse_error(status, body, {"retry-after": "3"}, TARGET)
    assert type(error) is kind
    assert "p must be between" in error.message
    if kind is UpstreamRateLimitedError:
        assert error.headers == {"retry-after": "3"}


def test_a_spent_account_is_quota_and_a_trial_cap_a_rate_limit() -> None:
    # The trial key's monthly cap says so only in its message: never matched.
    trial = b'{"id":"e","message":"You are using a Trial key, which is limited to 1000 calls"}'
    assert type(PROVIDER.parse_error(429, trial, {}, TARGET)) is UpstreamRateLimitedError
    spent = b'{"id":"e","message":"Please add or update your payment method"}'
    error = PROVIDER.parse_error(402, spent, {}, TARGET)
    assert type(error) is UpstreamQuotaError
    assert not error.retryable


@pytest.mark.parametrize("status", [401, 403, 498])
def test_credentials_errors_hide_the_provider_text(status: int) -> None:
    error = PROVIDER.parse_error(status, b'{"message":"invalid api token co-secret"}', {}, TARGET)
    assert type(error) is UpstreamError
    assert "co-secret" not in error.message


# ---------------------------------------------------------------------------------------------
# Against the emulator


@pytest.fixture
def emulator() -> TestClient:
    return TestClient(Starlette(routes=[Mount("/cohere", routes=cohere_emulator.routes())]))


def _send(client: TestClient, chat: ChatRequest, model: str = "command-a-vision") -> Any:
    settings = ProviderSettings(
        name="co", kind="cohere", base_url="http://testserver/cohere", api_key="k"
    )
    upstream = PROVIDER.build_request(chat, Target(settings, model))
    return client.post(upstream.url, content=upstream.body, headers=dict(upstream.headers))


def test_round_trip_through_the_emulator(emulator: TestClient) -> None:
    image = inline(JPEG, "image/jpeg", 64, 48)
    response = _send(emulator, request(Message("user", (Text("What is this?"), image))))
    assert response.status_code == 200
    (choice,) = PROVIDER.parse_response(response.content, TARGET).choices
    assert choice.content == 'Saw 1 image: #1 image/jpeg 64x48 detail=auto. Asked: "What is this?"'


def test_stream_and_tools_through_the_emulator(emulator: TestClient) -> None:
    chat = request(Message("user", "Paris?"), tools=(WEATHER,), tool_choice="required", stream=True)
    response = _send(emulator, chat)
    events = events_of(response.content)
    calls = [d for e in events if isinstance(e, Delta) for d in e.tool_calls or ()]
    assert calls[0].name == "weather"
    assert json.loads("".join(c.arguments or "" for c in calls)) == {"text": "Paris?"}
    assert Finish(0, "tool_calls") in events


def test_emulator_errors_through_the_adapter(emulator: TestClient) -> None:
    image = inline(PNG, "image/png", 32, 16)
    response = _send(emulator, request(Message("user", (image,))), model="command-a-text")
    error = PROVIDER.parse_error(response.status_code, response.content, {}, TARGET)
    assert isinstance(error, UpstreamRejectedError)
    assert "does not support image inputs" in error.message
