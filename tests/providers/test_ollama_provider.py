"""The Ollama adapter: golden bodies, response and NDJSON stream parsing, error mapping.

Every built body is checked three ways: by the ``ollama`` SDK's own pydantic request types
(round-tripped, so a field the SDK does not know shows up as a difference), by the strict
rules those types leave out (bare base64 images, string content, object arguments), and by
the emulator's validator, which answers like Ollama's server.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
import pytest
from ollama._types import ChatRequest as SdkChatRequest
from ollama._types import Image as SdkImage
from ollama._types import Message as SdkMessage
from ollama._types import Options as SdkOptions
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from aperture.emulator import ollama as ollama_emulator
from aperture.emulator.ollama_request import OllamaError, parse_chat_request
from aperture.errors import (
    ImageUrlNotSupportedError,
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
    Usage,
    UsageReport,
)
from aperture.providers.base import Provider
from aperture.providers.ollama import DEFAULT_BASE_URL, OllamaProvider
from aperture.settings import ProviderSettings
from aperture.upstream import SseEvent
from aperture.upstream.ndjson import NdjsonDecoder
from tests.sample_images import jpeg, png

PROVIDER = OllamaProvider()
SETTINGS = ProviderSettings(name="local", kind="ollama", headers={"x-team": "vision"})
TARGET = Target(SETTINGS, "llava:13b")
JPEG = jpeg(64, 48)
JPEG_B64 = base64.b64encode(JPEG).decode()
PNG = png(32, 16)
PNG_B64 = base64.b64encode(PNG).decode()
WEATHER = Tool(
    name="weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


# ---------------------------------------------------------------------------------------------
# Helpers


def inline(data: bytes, mime: str, width: int, height: int) -> Image:
    """An image as intake leaves it: a canonical data URI plus what was learned about it."""
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
    return Image(prefix + base64.b64encode(data).decode(), inline=info)


def request(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model="local-vision", messages=messages, **fields)


def user(*parts: Text | Image | Audio) -> Message:
    return Message("user", parts)


def build(chat: ChatRequest, target: Target = TARGET) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(PROVIDER.build_request(chat, target).body)
    assert_valid(body)
    return body


def assert_valid(body: dict[str, Any]) -> None:
    """The SDK's types, the strict rules they leave out, and the emulator's validator."""
    sdk_messages = [
        SdkMessage.model_validate(
            {**m, "images": [SdkImage(value=v) for v in m["images"]]} if "images" in m else m
        )
        for m in body["messages"]
    ]
    typed = SdkChatRequest.model_validate({**body, "messages": sdk_messages})
    # Round trip: a field the SDK does not model is dropped, and the dump no longer matches.
    assert typed.model_dump(exclude_none=True, by_alias=True) == body
    if "options" in body:
        assert (
            SdkOptions.model_validate(body["options"]).model_dump(exclude_none=True)
            == (body["options"])
        )
    assert_strict(body)
    try:
        parse_chat_request(msgspec.json.encode(body))
    except OllamaError as error:  # pragma: no cover - the message is the diagnosis
        pytest.fail(f"the emulator refused the body: {error.message}")


def assert_strict(body: dict[str, Any]) -> None:
    assert isinstance(body["stream"], bool), "Ollama streams by default: always say which"
    for message in body["messages"]:
        assert message["role"] in ("system", "user", "assistant", "tool")
        assert isinstance(message["content"], str)
        for image in message.get("images", []):
            assert not image.startswith("data:"), "bare base64, never a data URI"
            base64.b64decode(image, validate=True)
        for call in message.get("tool_calls", []):
            assert set(call) == {"function"}
            assert isinstance(call["function"]["arguments"], dict)


def feed_ndjson(lines: list[dict[str, Any]], size: int = 7) -> list[StreamEvent]:
    """Serialise ``lines`` as an NDJSON body, split it into small chunks, and parse it."""
    body = b"".join(msgspec.json.encode(line) + b"\n" for line in lines)
    decoder = NdjsonDecoder()
    parser = PROVIDER.stream_parser(TARGET)
    events: list[StreamEvent] = []
    for start in range(0, len(body), size):
        for line in decoder.feed(body[start : start + size]):
            events += parser.feed(line)
    assert parser.done
    return events


def chunk(content: str = "", **fields: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": content, **fields.pop("message", {})}
    return {
        "model": "llava:13b",
        "created_at": "2026-01-02T03:04:05.123456789Z",
        "message": message,
        "done": False,
        **fields,
    }


def final(reason: str = "stop", prompt: int = 30, output: int = 5) -> dict[str, Any]:
    return chunk(
        done=True,
        done_reason=reason,
        prompt_eval_count=prompt,
        eval_count=output,
        total_duration=1,
        eval_duration=1,
    )


# ---------------------------------------------------------------------------------------------
# Requests


def test_fulfils_the_provider_protocol() -> None:
    provider: Provider = PROVIDER  # checked by mypy
    assert provider.stream_framing == "ndjson"
    assert provider.stream_ends_with_body is False


def test_text_request_golden_body_url_and_headers() -> None:
    chat = request(
        Message("system", "Be brief."),
        Message("developer", "Answer in English."),
        Message("user", "Hello?"),
    )
    upstream = PROVIDER.build_request(chat, TARGET)
    assert upstream.url == f"{DEFAULT_BASE_URL}/api/chat"
    assert upstream.headers == {"Content-Type": "application/json", "x-team": "vision"}
    body = build(chat)
    assert body == {
        "model": "llava:13b",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "Hello?"},
        ],
        "stream": False,
    }


def test_base_url_and_key_for_a_proxy_or_ollama_cloud() -> None:
    settings = ProviderSettings(
        name="cloud", kind="ollama", base_url="https://ollama.example/", api_key="sk-o"
    )
    upstream = PROVIDER.build_request(request(Message("user", "hi")), Target(settings, "m"))
    assert upstream.url == "https://ollama.example/api/chat"
    assert upstream.headers["Authorization"] == "Bearer sk-o"


def test_one_image_is_bare_base64_on_its_message() -> None:
    body = build(request(user(Text("What is this?"), inline(JPEG, "image/jpeg", 64, 48))))
    assert body["messages"] == [{"role": "user", "content": "What is this?", "images": [JPEG_B64]}]


def test_several_images_keep_their_order_and_texts_join() -> None:
    chat = request(
        user(
            Text("Compare"),
            inline(JPEG, "image/jpeg", 64, 48),
            Text("with"),
            inline(PNG, "image/png", 32, 16),
        )
    )
    (message,) = build(chat)["messages"]
    assert message == {"role": "user", "content": "Compare\nwith", "images": [JPEG_B64, PNG_B64]}


def test_an_image_in_history_stays_on_its_turn() -> None:
    chat = request(
        user(Text("What is this?"), inline(PNG, "image/png", 32, 16)),
        Message("assistant", "A red square."),
        Message("user", "And its size?"),
    )
    messages = build(chat)["messages"]
    assert messages[0]["images"] == [PNG_B64]
    assert "images" not in messages[1] and "images" not in messages[2]


def test_a_data_uri_without_intake_is_sliced_to_its_payload() -> None:
    uri = f"data:image/jpeg;base64,{JPEG_B64}"
    (message,) = build(request(user(Text("x"), Image(uri))))["messages"]
    assert message["images"] == [JPEG_B64]


def test_an_image_url_is_refused_with_the_url_policy_hint() -> None:
    chat = request(user(Text("x"), Image("https://example.com/cat.png")))
    with pytest.raises(ImageUrlNotSupportedError) as caught:
        PROVIDER.build_request(chat, TARGET)
    assert isinstance(caught.value, InvalidRequestError)
    assert "url_policy" in caught.value.message and "fetch or auto" in caught.value.message
    assert caught.value.param == "messages[0].content[1].image_url.url"


def test_audio_and_n_are_refused() -> None:
    with pytest.raises(UnsupportedCapabilityError):
        PROVIDER.build_request(request(user(Audio("AAAA", "wav"))), TARGET)
    with pytest.raises(UnsupportedCapabilityError):
        PROVIDER.build_request(request(Message("user", "hi"), n=2), TARGET)


def test_sampling_goes_into_options_and_extra_is_not_forwarded() -> None:
    chat = request(
        Message("user", "hi"),
        max_tokens=50,
        temperature=0.2,
        top_p=0.9,
        seed=7,
        stop=("END",),
        user="u-1",
        stream=True,
        extra={"logit_bias": msgspec.Raw(b"{}"), "keep_alive": msgspec.Raw(b'"5m"')},
    )
    body = build(chat)
    assert body["stream"] is True
    assert body["options"] == {
        "num_predict": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 7,
        "stop": ["END"],
    }
    assert set(body) == {"model", "messages", "stream", "options"}


def test_json_mode_and_json_schema_use_format() -> None:
    asked = request(Message("user", "Reply in JSON"), response_format=ResponseFormat("json_object"))
    assert build(asked)["format"] == "json"
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    wrapped = ResponseFormat("json_schema", {"name": "count", "schema": schema, "strict": True})
    assert build(request(Message("user", "count"), response_format=wrapped))["format"] == schema
    text = request(Message("user", "hi"), response_format=ResponseFormat("text"))
    assert "format" not in build(text)


def test_tools_and_tool_history() -> None:
    chat = request(
        Message("user", "Weather in Paris?"),
        Message("assistant", None, tool_calls=(ToolCall("call_1", "weather", '{"city":"Paris"}'),)),
        Message("tool", "18C and sunny", tool_call_id="call_1"),
        tools=(WEATHER,),
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
    assert body["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Paris"}}}],
    }
    assert body["messages"][2] == {
        "role": "tool",
        "content": "18C and sunny",
        "tool_name": "weather",
    }


def test_tool_choice_without_an_ollama_field() -> None:
    other = Tool(name="time", parameters={"type": "object", "properties": {}})
    base = (Message("user", "hi"),)
    assert "tools" not in build(request(*base, tools=(WEATHER, other), tool_choice="none"))
    named = build(request(*base, tools=(WEATHER, other), tool_choice=NamedToolChoice("time")))
    assert [t["function"]["name"] for t in named["tools"]] == ["time"]
    required = build(request(*base, tools=(WEATHER, other), tool_choice="required"))
    assert len(required["tools"]) == 2
    with pytest.raises(InvalidRequestError):
        PROVIDER.build_request(
            request(*base, tools=(WEATHER,), tool_choice=NamedToolChoice("nope")), TARGET
        )


def test_tool_arguments_must_be_a_json_object() -> None:
    bad = Message("assistant", None, tool_calls=(ToolCall("c", "weather", "[1, 2]"),))
    with pytest.raises(InvalidRequestError) as caught:
        PROVIDER.build_request(request(Message("user", "x"), bad), TARGET)
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


# ---------------------------------------------------------------------------------------------
# Responses and streams


def test_parse_text_response() -> None:
    body = msgspec.json.encode(final() | {"message": {"role": "assistant", "content": "Hi."}})
    response = PROVIDER.parse_response(body, TARGET)
    assert response.model == "llava:13b"
    assert response.created == 1767323045
    assert response.id.startswith("ollama-")
    (choice,) = response.choices
    assert (choice.content, choice.finish_reason, choice.tool_calls) == ("Hi.", "stop", None)
    assert response.usage == Usage(prompt_tokens=30, completion_tokens=5)


def test_parse_tool_calls_and_length() -> None:
    calls = [{"function": {"name": "weather", "arguments": {"city": "Paris"}}}]
    body = final() | {"message": {"role": "assistant", "content": "", "tool_calls": calls}}
    (choice,) = PROVIDER.parse_response(msgspec.json.encode(body), TARGET).choices
    assert choice.finish_reason == "tool_calls" and choice.content is None
    (call,) = choice.tool_calls or ()
    assert (call.name, json.loads(call.arguments)) == ("weather", {"city": "Paris"})
    assert call.id.startswith("call_")
    again = PROVIDER.parse_response(msgspec.json.encode(body), TARGET).choices[0]
    assert again.tool_calls == choice.tool_calls, "derived ids are stable"
    with_id = [{"id": "abc", "function": {"name": "weather", "arguments": {}}}]
    body["message"]["tool_calls"] = with_id
    parsed = PROVIDER.parse_response(msgspec.json.encode(body), TARGET).choices[0]
    assert parsed.tool_calls == (ToolCall("abc", "weather", "{}"),)
    cut = msgspec.json.encode(final("length"))
    assert PROVIDER.parse_response(cut, TARGET).choices[0].finish_reason == "length"


def test_stream_text() -> None:
    events = feed_ndjson([chunk("The"), chunk(" sky"), chunk(" is blue."), final(output=3)])
    assert events == [
        Delta(index=0, role="assistant", content=""),
        Delta(index=0, content="The"),
        Delta(index=0, content=" sky"),
        Delta(index=0, content=" is blue."),
        Finish(0, "stop"),
        UsageReport(Usage(prompt_tokens=30, completion_tokens=3)),
    ]


def test_stream_tool_calls_arrive_whole_one_delta_each() -> None:
    calls = [
        {"function": {"name": "weather", "arguments": {"city": "Paris"}}},
        {"function": {"name": "weather", "arguments": {"city": "Rome"}}},
    ]
    events = feed_ndjson([chunk(message={"tool_calls": calls}), final()])
    deltas = [d for e in events if isinstance(e, Delta) for d in e.tool_calls or ()]
    assert [(d.index, d.name, d.arguments) for d in deltas] == [
        (0, "weather", '{"city":"Paris"}'),
        (1, "weather", '{"city":"Rome"}'),
    ]
    assert all(d.id and d.id.startswith("call_") for d in deltas)
    assert deltas[0].id != deltas[1].id
    assert events[-2] == Finish(0, "tool_calls")


def test_stream_parser_accepts_sse_wrapped_lines_and_skips_blanks() -> None:
    parser = PROVIDER.stream_parser(TARGET)
    assert parser.feed(SseEvent("message", json.dumps(chunk("Hi")))) == [
        Delta(index=0, role="assistant", content=""),
        Delta(index=0, content="Hi"),
    ]
    assert parser.feed("   ") == []


def test_error_line_mid_stream_raises() -> None:
    parser = PROVIDER.stream_parser(TARGET)
    parser.feed(json.dumps(chunk("The")))
    with pytest.raises(UpstreamUnavailableError) as caught:
        parser.feed('{"error":"an error was encountered while running the model"}')
    assert "running the model" in caught.value.message
    assert caught.value.provider == "local"
    assert not parser.done


def test_malformed_stream_line_and_body() -> None:
    with pytest.raises(UpstreamError, match="not valid JSON"):
        PROVIDER.stream_parser(TARGET).feed("{not json")
    with pytest.raises(UpstreamError, match="not valid JSON"):
        PROVIDER.parse_response(b"<html>", TARGET)


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, UpstreamRejectedError),
        (404, UpstreamRejectedError),
        (402, UpstreamQuotaError),
        (429, UpstreamRateLimitedError),
        (500, UpstreamUnavailableError),
        (502, UpstreamUnavailableError),
        (503, UpstreamUnavailableError),
        (504, UpstreamTimeoutError),
    ],
)
def test_error_classes(status: int, kind: type[UpstreamError]) -> None:
    body = b'{"error":"model \\"llava\\" not found, try pulling it first"}'
    error = PROVIDER.parse_error(status, body, {"Retry-After": "2", "x-other": "1"}, TARGET)
    assert type(error) is kind
    assert error.upstream_status == status
    assert 'model "llava" not found' in error.message
    if kind is UpstreamRateLimitedError:
        assert error.headers == {"retry-after": "2"}


def test_credentials_errors_never_echo_the_provider_text() -> None:
    error = PROVIDER.parse_error(401, b'{"error":"invalid key sk-o...123"}', {}, TARGET)
    assert type(error) is UpstreamError
    assert "sk-o" not in error.message


def test_non_json_error_body() -> None:
    error = PROVIDER.parse_error(502, b"<html>bad gateway</html>", {}, TARGET)
    assert isinstance(error, UpstreamUnavailableError)
    assert "bad gateway" in error.message


# ---------------------------------------------------------------------------------------------
# Against the emulator


@pytest.fixture
def emulator() -> TestClient:
    app = Starlette(routes=[Mount("/ollama", routes=ollama_emulator.routes())])
    return TestClient(app)


def _send(client: TestClient, chat: ChatRequest) -> tuple[int, bytes]:
    settings = ProviderSettings(name="emu", kind="ollama", base_url="http://testserver/ollama")
    upstream = PROVIDER.build_request(chat, Target(settings, "emulator-vision"))
    response = client.post(upstream.url, content=upstream.body, headers=dict(upstream.headers))
    return response.status_code, response.content


def test_round_trip_through_the_emulator(emulator: TestClient) -> None:
    chat = request(user(Text("What is this?"), inline(JPEG, "image/jpeg", 64, 48)))
    status, body = _send(emulator, chat)
    assert status == 200
    (choice,) = PROVIDER.parse_response(body, TARGET).choices
    assert choice.content == (
        'Saw 1 image: #1 image/jpeg 64x48 detail=auto. Asked: "What is this?"'
    )


def test_stream_round_trip_through_the_emulator(emulator: TestClient) -> None:
    chat = request(user(Text("What is this?"), inline(PNG, "image/png", 32, 16)), stream=True)
    status, body = _send(emulator, chat)
    assert status == 200
    decoder, parser = NdjsonDecoder(), PROVIDER.stream_parser(TARGET)
    events = [e for line in decoder.feed(body) + decoder.flush() for e in parser.feed(line)]
    text = "".join(e.content or "" for e in events if isinstance(e, Delta))
    assert text.startswith("Saw 1 image: #1 image/png 32x16 detail=auto.")
    assert parser.done and isinstance(events[-1], UsageReport)


def test_emulator_errors_map_to_gateway_errors(emulator: TestClient) -> None:
    status, body = _send(emulator, request(user(Text("x"), Image("data:image/png;base64,@@"))))
    assert status == 400
    error = PROVIDER.parse_error(status, body, {}, TARGET)
    assert isinstance(error, UpstreamRejectedError)
    assert "illegal base64 data" in error.message
