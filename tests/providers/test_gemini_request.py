"""The Gemini adapter's requests: URLs, headers and golden bodies.

Every built body is checked three ways: against the google-genai SDK's own pydantic types
(``Content``, ``GenerationConfig``, ``Tool``, ``ToolConfig``; they accept camelCase aliases
and forbid unknown fields), against the strict rules those types leave out (camelCase only,
bare base64, Gemini's image types, user/model alternation), and by the emulator's validator,
which answers like Gemini. The round trip through the emulator closes the file.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from typing import Any

import msgspec
import pytest
from google.genai import types
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from aperture.emulator import gemini as emulator
from aperture.emulator.gemini_errors import GoogleError
from aperture.emulator.gemini_request import parse_generate_request
from aperture.errors import (
    ImageDecodeError,
    InvalidRequestError,
    UnsupportedCapabilityError,
    UnsupportedImageFormatError,
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
    Tool,
    ToolCall,
    UsageReport,
    Video,
)
from aperture.providers._gemini_request import IMAGE_MIME_TYPES, SKIP_THOUGHT_SIGNATURE
from aperture.providers._gemini_schema import to_gemini_schema
from aperture.providers.gemini import GeminiProvider
from aperture.settings import ProviderSettings
from aperture.upstream import SseDecoder
from tests.sample_images import gif, jpeg, png

PROVIDER = GeminiProvider()
SETTINGS = ProviderSettings(
    name="gem", kind="gemini", api_key="AIza-secret", headers={"x-team": "vision"}
)
TARGET = Target(SETTINGS, "gemini-2.5-flash")
JPEG = jpeg(64, 48)
JPEG_B64 = base64.b64encode(JPEG).decode()
PNG = png(32, 16)
PNG_B64 = base64.b64encode(PNG).decode()
CAMEL = re.compile(r"[a-z][A-Za-z0-9]*")
# Maps whose keys are the client's (argument, property and schema names), not Gemini fields.
FREE_FORM = ("args", "response", "properties", "responseJsonSchema", "parametersJsonSchema")
WEATHER = Tool(
    "get_weather",
    "Weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


# ---------------------------------------------------------------------------------------------
# Helpers


def inline(data: bytes, mime: str, width: int, height: int, detail: Any = None) -> Image:
    """An image as intake leaves it: a canonical data URI plus what was learned about it."""
    prefix = f"data:{mime};base64,"
    values: dict[str, Any] = {
        "mime": mime,
        "width": width,
        "height": height,
        "size_bytes": len(data),
        "frames": 1,
        "payload_offset": len(prefix),
        "sha256": "0" * 64,
    }
    # Only the fields this version of InlineImage has: intake grows it over time.
    fields = InlineImage.__struct_fields__
    info = InlineImage(**{k: v for k, v in values.items() if k in fields})
    return Image(prefix + base64.b64encode(data).decode(), detail=detail, inline=info)


def request(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model="gem", messages=messages, **fields)


def build(chat: ChatRequest, target: Target = TARGET) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(PROVIDER.build_request(chat, target).body)
    assert_valid(body)
    return body


def assert_valid(body: dict[str, Any]) -> None:
    """The SDK's types, the strict rules they leave out, and the emulator's validator."""
    assert set(body) <= {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig"}
    for content in body["contents"]:
        types.Content.model_validate_json(json.dumps(content))
    if "systemInstruction" in body:
        types.Content.model_validate_json(json.dumps(body["systemInstruction"]))
    if "generationConfig" in body:
        types.GenerationConfig.model_validate_json(json.dumps(body["generationConfig"]))
    for tool in body.get("tools", []):
        types.Tool.model_validate_json(json.dumps(tool))
    if "toolConfig" in body:
        types.ToolConfig.model_validate_json(json.dumps(body["toolConfig"]))
    assert_strict(body)
    try:
        parse_generate_request(msgspec.json.encode(body), TARGET.upstream_model)
    except GoogleError as error:  # pragma: no cover - the message is the diagnosis
        pytest.fail(f"the emulator refused the body: {error.message}")


def assert_camel_case(node: Any, path: str = "") -> None:
    if isinstance(node, list):
        for item in node:
            assert_camel_case(item, path)
    elif isinstance(node, dict):
        for key, value in node.items():
            assert CAMEL.fullmatch(key), f"{path}.{key} is not lowerCamelCase"
            if key == "properties":
                for sub in value.values():
                    assert_camel_case(sub, f"{path}.{key}")
            elif key not in FREE_FORM:
                assert_camel_case(value, f"{path}.{key}")


def assert_strict(body: dict[str, Any]) -> None:
    assert_camel_case(body)
    contents = body["contents"]
    assert contents, "at least one turn"
    for previous, turn in itertools.pairwise(contents):
        assert previous["role"] != turn["role"], "roles alternate"
    for content in contents:
        assert content["role"] in ("user", "model")
        assert content["parts"], "no empty turns"
        for part in content["parts"]:
            _assert_part(part, content["role"])
    for part in body.get("systemInstruction", {"parts": []})["parts"]:
        assert set(part) == {"text"} and part["text"]


def _assert_part(part: dict[str, Any], role: str) -> None:
    data = [k for k in part if k not in ("thoughtSignature", "thought", "mediaResolution")]
    assert len(data) == 1, f"exactly one data field per part: {sorted(part)}"
    if "text" in part:
        assert part["text"], "no empty text parts"
    if "inlineData" in part:
        blob = part["inlineData"]
        assert set(blob) == {"mimeType", "data"}
        assert not blob["data"].startswith("data:")
        base64.b64decode(blob["data"], validate=True)
        if blob["mimeType"].startswith("image/"):
            assert blob["mimeType"] in IMAGE_MIME_TYPES
            assert blob["mimeType"] in {"image/png", "image/jpeg", "image/webp"} | {
                "image/heic",
                "image/heif",
            }
    if "fileData" in part:
        assert part["fileData"]["fileUri"].startswith("https://")
    if "functionCall" in part:
        assert role == "model"
        assert isinstance(part["functionCall"]["args"], dict)
    if "functionResponse" in part:
        assert role == "user"
        assert isinstance(part["functionResponse"]["response"], dict)


def stream_through_emulator(chat: ChatRequest) -> list[StreamEvent]:
    upstream = PROVIDER.build_request(chat, TARGET)
    app = Starlette(routes=[Mount("/gemini", routes=emulator.routes())])
    path = upstream.url.removeprefix("https://generativelanguage.googleapis.com")
    with TestClient(app) as client:
        response = client.post(
            "/gemini" + path, content=upstream.body, headers=dict(upstream.headers)
        )
    assert response.status_code == 200, response.text
    parser = PROVIDER.stream_parser(TARGET)
    events: list[StreamEvent] = []
    for event in SseDecoder().feed(response.content):
        assert not parser.done
        events += parser.feed(event)
    assert parser.done
    return events


# ---------------------------------------------------------------------------------------------
# URLs and headers


def test_urls_depend_on_streaming_and_the_key_goes_in_a_header() -> None:
    plain = PROVIDER.build_request(request(Message("user", "Hi")), TARGET)
    assert plain.method == "POST"
    assert plain.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    streamed = PROVIDER.build_request(request(Message("user", "Hi"), stream=True), TARGET)
    assert streamed.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
        ":streamGenerateContent?alt=sse"
    )
    assert dict(plain.headers) == {
        "Content-Type": "application/json",
        "x-team": "vision",
        "x-goog-api-key": "AIza-secret",
    }
    assert "key=" not in streamed.url and "AIza" not in streamed.url
    assert b"stream" not in streamed.body


@pytest.mark.parametrize(
    ("base_url", "model", "url"),
    [
        (
            "http://emu:9/gemini",
            "emulator-vision",
            "http://emu:9/gemini/v1beta/models/emulator-vision",
        ),
        (
            "https://proxy.example/v1beta/",
            "models/gemini-2.0-flash",
            "https://proxy.example/v1beta/models/gemini-2.0-flash",
        ),
        (
            "https://proxy.example/v1alpha",
            "gemini-3-pro",
            "https://proxy.example/v1alpha/models/gemini-3-pro",
        ),
        (
            None,
            "tunedModels/my-model-7",
            "https://generativelanguage.googleapis.com/v1beta/tunedModels/my-model-7",
        ),
    ],
)
def test_base_url_and_model_path(base_url: str | None, model: str, url: str) -> None:
    settings = ProviderSettings(name="g", kind="gemini", base_url=base_url)
    upstream = PROVIDER.build_request(request(Message("user", "Hi")), Target(settings, model))
    assert upstream.url == f"{url}:generateContent"
    assert "x-goog-api-key" not in upstream.headers  # no key configured, none sent


# ---------------------------------------------------------------------------------------------
# Golden bodies


def test_golden_text_request() -> None:
    chat = request(
        Message("system", "You are terse."),
        Message("developer", (Text("Answer in English."),)),
        Message("user", "Hello"),
        max_tokens=200,
        temperature=0.4,
        top_p=0.9,
        stop=("END",),
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        user="user-42",
        parallel_tool_calls=False,
        extra={"logprobs": msgspec.Raw(b"true"), "service_tier": msgspec.Raw(b'"flex"')},
    )
    assert build(chat) == {
        "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
        "systemInstruction": {
            "parts": [{"text": "You are terse."}, {"text": "Answer in English."}]
        },
        "generationConfig": {
            "maxOutputTokens": 200,
            "temperature": 0.4,
            "topP": 0.9,
            "seed": 7,
            "presencePenalty": 0.1,
            "frequencyPenalty": 0.2,
            "stopSequences": ["END"],
        },
    }


def test_one_inline_image_is_bare_base64_with_the_sniffed_type() -> None:
    chat = request(Message("user", (Text("What is this?"), inline(JPEG, "image/jpeg", 64, 48))))
    assert build(chat)["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "What is this?"},
                {"inlineData": {"mimeType": "image/jpeg", "data": JPEG_B64}},
            ],
        }
    ]


def test_several_images_and_an_image_in_history() -> None:
    chat = request(
        Message("user", (Text("Remember this."), inline(PNG, "image/png", 32, 16, "low"))),
        Message("assistant", "Noted."),
        Message(
            "user",
            (
                Text("Compare with these."),
                inline(JPEG, "image/jpeg", 64, 48, "low"),
                Image("https://example.com/photos/cat.JPG?size=2", detail="low"),
                Image("https://example.com/render", detail="low"),
            ),
        ),
    )
    body = build(chat)
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Remember this."},
                {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
            ],
        },
        {"role": "model", "parts": [{"text": "Noted."}]},
        {
            "role": "user",
            "parts": [
                {"text": "Compare with these."},
                {"inlineData": {"mimeType": "image/jpeg", "data": JPEG_B64}},
                {
                    "fileData": {
                        "fileUri": "https://example.com/photos/cat.JPG?size=2",
                        "mimeType": "image/jpeg",
                    }
                },
                {"fileData": {"fileUri": "https://example.com/render"}},
            ],
        },
    ]
    # Every image asked for low detail: the request-level resolution is LOW.
    assert body["generationConfig"] == {"mediaResolution": "MEDIA_RESOLUTION_LOW"}


@pytest.mark.parametrize(
    ("details", "resolution"),
    [
        (("low", "high", None), "MEDIA_RESOLUTION_HIGH"),
        (("low", "low"), "MEDIA_RESOLUTION_LOW"),
        (("low", "auto"), None),
        ((None,), None),
    ],
)
def test_detail_becomes_the_highest_media_resolution(
    details: tuple[Any, ...], resolution: str | None
) -> None:
    images = tuple(inline(PNG, "image/png", 32, 16, detail) for detail in details)
    body = build(request(Message("user", (Text("Look."), *images))))
    assert body.get("generationConfig", {}).get("mediaResolution") == resolution


def test_a_data_uri_without_intake_is_still_translated() -> None:
    uri = "data:image/jpg;base64," + JPEG_B64
    body = build(request(Message("user", (Text("Hi"), Image(uri)))))
    assert body["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/jpeg", "data": JPEG_B64}
    }


def test_gif_and_bad_data_uris_are_refused_before_sending() -> None:
    gif_image = inline(gif(), "image/gif", 16, 16)
    with pytest.raises(UnsupportedImageFormatError) as caught:
        PROVIDER.build_request(request(Message("user", (Text("Hi"), gif_image))), TARGET)
    assert caught.value.param == "messages[0].content[1].image_url.url"
    with pytest.raises(ImageDecodeError):
        PROVIDER.build_request(request(Message("user", (Image("data:,abc"),))), TARGET)


def test_tool_conversation_maps_ids_back_to_names() -> None:
    chat = request(
        Message("system", "Be helpful."),
        Message("user", (Text("Weather in Paris and Rome?"), inline(JPEG, "image/jpeg", 64, 48))),
        Message(
            "assistant",
            "",
            tool_calls=(
                ToolCall("call_0_get_weather", "get_weather", '{"city": "Paris"}'),
                ToolCall("call_1_get_weather", "get_weather", '{"city":"Rome"}'),
            ),
        ),
        Message("tool", '{"temp": 18}', tool_call_id="call_0_get_weather"),
        Message(
            "tool",
            (Text("21C"), inline(PNG, "image/png", 32, 16)),
            tool_call_id="call_1_get_weather",
        ),
        Message("user", "And now?"),
        Message("assistant", None, tool_calls=(ToolCall("call_0_get_weather", "ping", ""),)),
        Message("tool", "pong", tool_call_id="call_0_get_weather"),
        tools=(WEATHER, Tool("ping")),
        tool_choice="required",
        stream=True,
    )
    body = build(chat)
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Weather in Paris and Rome?"},
                {"inlineData": {"mimeType": "image/jpeg", "data": JPEG_B64}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": SKIP_THOUGHT_SIGNATURE,
                },
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
                {"functionResponse": {"name": "get_weather", "response": {"output": "21C"}}},
                {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
                {"text": "And now?"},
            ],
        },
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "ping", "args": {}},
                    "thoughtSignature": SKIP_THOUGHT_SIGNATURE,
                }
            ],
        },
        # The id repeats an earlier one: the nearest earlier call (ping) is the one answered.
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "ping", "response": {"output": "pong"}}}],
        },
    ]
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city.",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city": {"type": "STRING"}},
                        "required": ["city"],
                    },
                },
                {"name": "ping"},
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (NamedToolChoice("get_weather"), {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
        (None, None),
    ],
)
def test_tool_choice(choice: Any, config: dict[str, Any] | None) -> None:
    body = build(request(Message("user", "Hi"), tools=(WEATHER,), tool_choice=choice))
    assert body.get("toolConfig") == ({"functionCallingConfig": config} if config else None)


def test_tool_parameters_that_do_not_convert_go_as_json_schema() -> None:
    free_form = {"type": "object", "properties": {"tags": {"type": "object"}}}
    empty = {"type": "object", "properties": {}, "additionalProperties": False}
    body = build(
        request(
            Message("user", "Hi"), tools=(Tool("tag", None, free_form), Tool("noop", None, empty))
        )
    )
    assert body["tools"][0]["functionDeclarations"] == [
        {"name": "tag", "parametersJsonSchema": free_form},
        {"name": "noop"},
    ]


def test_a_tool_result_without_a_matching_call_is_refused() -> None:
    chat = request(Message("user", "Hi"), Message("tool", "x", tool_call_id="call_9_nope"))
    with pytest.raises(InvalidRequestError) as caught:
        PROVIDER.build_request(chat, TARGET)
    assert caught.value.param == "messages[1].tool_call_id"
    # The legacy function-message name is the fallback.
    named = request(
        Message("user", "Hi"),
        Message("assistant", "Calling."),
        Message("tool", "x", name="legacy", tool_call_id="?"),
    )
    assert build(named)["contents"][2]["parts"] == [
        {"functionResponse": {"name": "legacy", "response": {"output": "x"}}}
    ]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    chat = request(
        Message("user", "Hi"),
        Message("assistant", None, tool_calls=(ToolCall("c", "f", arguments),)),
    )
    with pytest.raises(InvalidRequestError) as caught:
        PROVIDER.build_request(chat, TARGET)
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


def test_turns_merge_and_empty_text_is_dropped() -> None:
    chat = request(
        Message("user", "One."),
        Message("user", (Text(""), Text("Two."))),
        Message("assistant", ""),
        Message("assistant", "Three."),
        Message("user", ""),
    )
    assert build(chat)["contents"] == [
        {"role": "user", "parts": [{"text": "One."}, {"text": "Two."}]},
        {"role": "model", "parts": [{"text": "Three."}]},
    ]


def test_a_request_with_nothing_to_send_is_refused() -> None:
    with pytest.raises(InvalidRequestError):
        PROVIDER.build_request(
            request(Message("system", "Only rules."), Message("user", "")), TARGET
        )
    with pytest.raises(InvalidRequestError) as caught:
        PROVIDER.build_request(
            request(Message("system", (inline(PNG, "image/png", 32, 16),)), Message("user", "Hi")),
            TARGET,
        )
    assert caught.value.param == "messages[0].content[0]"


def test_json_mode_and_json_schema() -> None:
    plain = build(request(Message("user", "Hi"), response_format=ResponseFormat("json_object")))
    assert plain["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"]}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    wrapped = {"name": "person", "schema": schema, "strict": True}
    body = build(
        request(Message("user", "Hi"), response_format=ResponseFormat("json_schema", wrapped))
    )
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "OBJECT",
            "properties": {
                "name": {"type": "STRING"},
                "age": {"type": "INTEGER", "nullable": True},
            },
            "propertyOrdering": ["name", "age"],
            "required": ["name", "age"],
        },
    }
    open_map = {"type": "object", "additionalProperties": {"type": "number"}}
    fallback = build(
        request(Message("user", "Hi"), response_format=ResponseFormat("json_schema", open_map))
    )
    assert fallback["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": open_map,
    }
    text = build(request(Message("user", "Hi"), response_format=ResponseFormat("text")))
    assert "generationConfig" not in text


def test_audio_video_and_pdf_parts() -> None:
    pdf = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4").decode()
    body = build(
        request(
            Message(
                "user",
                (
                    Text("Summarise."),
                    Audio(base64.b64encode(b"RIFF").decode(), "wav"),
                    Video("https://www.youtube.com/watch?v=abc"),
                    File(file_data=pdf, filename="a.pdf"),
                ),
            ),
            n=2,
        )
    )
    assert body["contents"][0]["parts"][1:] == [
        {"inlineData": {"mimeType": "audio/wav", "data": base64.b64encode(b"RIFF").decode()}},
        {"fileData": {"fileUri": "https://www.youtube.com/watch?v=abc"}},
        {"inlineData": {"mimeType": "application/pdf", "data": pdf.partition(",")[2]}},
    ]
    assert body["generationConfig"] == {"candidateCount": 2}
    with pytest.raises(UnsupportedCapabilityError):
        PROVIDER.build_request(request(Message("user", (File(file_id="file-abc"),))), TARGET)


# ---------------------------------------------------------------------------------------------
# The emulator answers what the adapter builds


def test_round_trip_text_stream_through_the_emulator() -> None:
    chat = request(
        Message("system", "Be brief."),
        Message("user", (Text("What is it?"), inline(PNG, "image/png", 32, 16, "high"))),
        stream=True,
    )
    events = stream_through_emulator(chat)
    text = "".join(e.content or "" for e in events if isinstance(e, Delta))
    assert text == (
        'Saw 1 image: #1 image/png 32x16 detail=high. Asked: "What is it?" System: "Be brief."'
    )
    assert events[0] == Delta(index=0, role="assistant", content="")
    assert events[-2] == Finish(0, "stop")
    usage = events[-1]
    assert isinstance(usage, UsageReport)
    assert usage.usage.image_tokens == 258
    assert usage.usage.completion_tokens == len(text.split())


def test_round_trip_forced_tool_call_through_the_emulator() -> None:
    chat = request(Message("user", "Paris?"), tools=(WEATHER,), tool_choice="required", stream=True)
    events = stream_through_emulator(chat)
    calls = [c for e in events if isinstance(e, Delta) and e.tool_calls for c in e.tool_calls]
    assert [(c.index, c.id, c.name, c.arguments) for c in calls] == [
        (0, "call_0_get_weather", "get_weather", '{"text":"Paris?"}')
    ]
    assert Finish(0, "tool_calls") in events


# ---------------------------------------------------------------------------------------------
# JSON Schema to Gemini Schema


PYDANTIC_STYLE = {
    "$defs": {
        "Address": {
            "type": "object",
            "title": "Address",
            "properties": {"city": {"type": "string", "title": "City"}},
            "required": ["city"],
        }
    },
    "type": "object",
    "properties": {
        "home": {"allOf": [{"$ref": "#/$defs/Address"}], "description": "Where they live."},
        "work": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}], "default": None},
        "kind": {"const": "person"},
        "born": {"type": "string", "format": "date-time"},
        "email": {"type": "string", "format": "email"},
    },
    "required": ["home"],
    "additionalProperties": False,
    "$schema": "https://json-schema.org/draft/2020-12/schema",
}


def test_schema_conversion_inlines_refs_and_keeps_order() -> None:
    address = {
        "type": "OBJECT",
        "title": "Address",
        "properties": {"city": {"type": "STRING", "title": "City"}},
        "required": ["city"],
    }
    converted = to_gemini_schema(PYDANTIC_STYLE)
    assert converted == {
        "type": "OBJECT",
        "properties": {
            "home": {**address, "description": "Where they live."},
            "work": {**address, "nullable": True, "default": None},
            "kind": {"enum": ["person"], "type": "STRING"},
            "born": {"type": "STRING", "format": "date-time"},
            "email": {"type": "STRING"},
        },
        "propertyOrdering": ["home", "work", "kind", "born", "email"],
        "required": ["home"],
    }
    types.Schema.model_validate_json(json.dumps(converted))


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "additionalProperties": {"type": "string"}},
        {"type": "object", "properties": {"x": {}}},
        {"type": ["string", "integer"]},
        {"type": "integer", "enum": [1, 2]},
        {
            "type": "object",
            "properties": {"n": {"$ref": "#/$defs/N"}},
            "$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}},
        },
        {"$ref": "https://example.com/schema.json"},
        {"allOf": [{"type": "string"}, {"minLength": 2}]},
        {"not": {"type": "string"}},
        {"type": "array", "prefixItems": [{"type": "string"}]},
    ],
)
def test_schemas_gemini_cannot_express_are_not_converted(schema: dict[str, Any]) -> None:
    assert to_gemini_schema(schema) is None
