"""The Bedrock adapter's requests: golden Converse bodies, URLs, headers and refusals.

Every built body is checked three ways: against botocore's bedrock-runtime service model
(``ParamValidator`` on the body in botocore's parameter form, for Converse or
ConverseStream), against the strict rules that validator leaves out (enums, alternation,
blank text, image encoding and limits, tool pairing), and by the emulator's validator,
which answers like Bedrock.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import msgspec
import pytest
import yarl
from botocore.validate import ParamValidator

from aperture.emulator.bedrock_errors import BedrockError
from aperture.emulator.bedrock_request import parse_converse_request
from aperture.errors import (
    ImageUrlNotSupportedError,
    InvalidRequestError,
    UnsupportedCapabilityError,
    UnsupportedImageFormatError,
    UpstreamError,
)
from aperture.media.sniff import sniff
from aperture.model import (
    Audio,
    CacheMark,
    ChatRequest,
    File,
    Image,
    InlineImage,
    Message,
    NamedToolChoice,
    ResponseFormat,
    Target,
    Text,
    Tool,
    ToolCall,
)
from aperture.providers._bedrock_request import JSON_INSTRUCTION
from aperture.providers.bedrock import IMAGE_FORMATS, AwsCredentialSource, BedrockProvider
from aperture.settings import ProviderSettings
from tests.sample_images import gif, jpeg, png, webp

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"


def fixed_region(region: str | None) -> AwsCredentialSource:
    """A credential source whose botocore session knows only ``region`` (no files read)."""

    def session() -> botocore.session.Session:
        made = botocore.session.Session()
        made.set_config_variable("region", region)
        return made

    return AwsCredentialSource(session)


PROVIDER = BedrockProvider(fixed_region("us-west-2"))
SETTINGS = ProviderSettings(name="bedrock", kind="bedrock", headers={"x-team": "vision"})
TARGET = Target(SETTINGS, MODEL)
SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")
JPEG = jpeg(64, 48)
JPEG_B64 = base64.b64encode(JPEG).decode()


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------------------------------------
# Helpers


def inline(data: bytes, mime: str, width: int, height: int) -> Image:
    """An image as intake leaves it: a canonical data URI plus what was learned about it."""
    prefix = f"data:{mime};base64,"
    info = InlineImage(mime, width, height, len(data), 1, len(prefix))
    return Image(prefix + base64.b64encode(data).decode(), inline=info)


def request(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model="claude", messages=messages, **fields)


def build(chat: ChatRequest, target: Target = TARGET) -> dict[str, Any]:
    upstream = PROVIDER.build_request(chat, target)
    body: dict[str, Any] = json.loads(upstream.body)
    assert_valid(body, target.upstream_model, stream=chat.stream)
    return body


def to_params(body: dict[str, Any], model_id: str) -> dict[str, Any]:
    """botocore's parameter form: image bytes raw (botocore base64-encodes blobs itself)."""
    params: dict[str, Any] = json.loads(json.dumps(body))
    params["modelId"] = model_id
    for message in params["messages"]:
        for block in message["content"]:
            images = [block.get("image")]
            result = block.get("toolResult")
            if result is not None:
                images += [item.get("image") for item in result["content"]]
            for image in filter(None, [*images, block.get("document")]):
                image["source"]["bytes"] = base64.b64decode(image["source"]["bytes"])
    return params


def assert_valid(body: dict[str, Any], model_id: str, *, stream: bool) -> None:
    """botocore's schema, the strict rules it leaves out, and the emulator's validator."""
    operation = SERVICE.operation_model("ConverseStream" if stream else "Converse")
    assert operation.input_shape is not None
    report = ParamValidator().validate(to_params(body, model_id), operation.input_shape)
    assert not report.has_errors(), report.generate_report()
    assert_strict(body)
    try:
        parse_converse_request(model_id, json.dumps(body).encode(), stream=stream)
    except BedrockError as error:  # pragma: no cover - the message is the diagnosis
        pytest.fail(f"the emulator refused the body: {error.message}")


def assert_strict(body: dict[str, Any]) -> None:
    turns = body["messages"]
    assert turns, "at least one turn"
    assert turns[0]["role"] == "user"
    for previous, turn in itertools.pairwise(turns):
        assert previous["role"] != turn["role"], "roles alternate"
    pending: set[str] = set()
    images = 0
    uses_tools = False
    for turn in turns:
        assert turn["role"] in ("user", "assistant")
        blocks = turn["content"]
        assert blocks, "no empty turns"
        results = [b["toolResult"]["toolUseId"] for b in blocks if "toolResult" in b]
        if turn["role"] == "user":
            # toolResult blocks open the turn and answer exactly the previous toolUse ids.
            assert all("toolResult" in b for b in blocks[: len(results)])
            assert set(results) == pending
            pending = set()
        else:
            assert not results
            assert not any("image" in b for b in blocks), "images only in user turns"
            pending = {b["toolUse"]["toolUseId"] for b in blocks if "toolUse" in b}
        uses_tools = uses_tools or bool(results or pending)
        for block in blocks:
            assert len(block) == 1, "a content block is a union"
            images += assert_block(block)
            for inner in block.get("toolResult", {}).get("content", []):
                images += assert_block(inner)
    assert images <= 20
    if uses_tools:
        assert body["toolConfig"]["tools"], "Bedrock wants toolConfig with tool blocks"
    for system in body.get("system", []):
        if "cachePoint" in system:  # a prompt-cache breakpoint sits between text blocks
            assert system == {"cachePoint": {"type": "default"}}
            continue
        assert system["text"].strip()
    for stop in body.get("inferenceConfig", {}).get("stopSequences", []):
        assert stop


def assert_block(block: dict[str, Any]) -> int:
    if "text" in block:
        assert block["text"].strip(), "no blank text blocks"
    if "toolUse" in block:
        assert isinstance(block["toolUse"]["input"], dict)
    if "image" not in block:
        return 0
    image = block["image"]
    assert image["format"] in ("png", "jpeg", "gif", "webp"), "lowercase enum values only"
    data = image["source"]["bytes"]
    assert not data.startswith("data:")
    assert len(data) <= 5 * 1024 * 1024, "Claude's 5 MB limit is on the base64 string"
    sniffed = sniff(base64.b64decode(data, validate=True))
    assert sniffed is not None
    assert IMAGE_FORMATS[sniffed.mime] == image["format"], "format matches the bytes"
    return 1


# ---------------------------------------------------------------------------------------------
# Golden requests


def test_golden_text_request() -> None:
    chat = request(
        Message("system", "You are terse."),
        Message("developer", (Text("Answer in English."),)),
        Message("user", "Hello"),
    )
    upstream = PROVIDER.build_request(chat, TARGET)
    assert upstream.method == "POST"
    assert upstream.url == (
        "https://bedrock-runtime.us-west-2.amazonaws.com/model/"
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0/converse"
    )
    # Unsigned: no api_key, so the dispatcher signs it (see test_bedrock_auth.py).
    assert dict(upstream.headers) == {"Content-Type": "application/json", "x-team": "vision"}
    assert build(chat) == {
        "system": [{"text": "You are terse."}, {"text": "Answer in English."}],
        "messages": [{"role": "user", "content": [{"text": "Hello"}]}],
    }


def test_golden_vision_and_tool_conversation() -> None:
    weather = Tool(
        "get_weather",
        "Weather for a city.",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    chat = request(
        Message("system", "Be helpful."),
        Message("user", (Text("What is here?"), inline(JPEG, "image/jpeg", 64, 48))),
        Message(
            "assistant",
            "Let me check.",
            tool_calls=(
                ToolCall("tooluse_1", "get_weather", '{"city": "Paris"}'),
                ToolCall("tooluse_2", "get_weather", ""),
            ),
        ),
        Message("tool", "18C", tool_call_id="tooluse_1"),
        Message("tool", (Text("21C"),), tool_call_id="tooluse_2"),
        Message("user", "And now?"),
        max_tokens=300,
        temperature=0.5,
        top_p=0.9,
        stop=("END", ""),
        tools=(weather, Tool("ping", "")),
        tool_choice="required",
        user="user-42",
        seed=7,
        presence_penalty=0.5,
        parallel_tool_calls=False,
        stream=True,
        extra={"logprobs": msgspec.Raw(b"true")},
    )
    upstream = PROVIDER.build_request(chat, TARGET)
    assert upstream.url.endswith(f"/model/{MODEL}/converse-stream")
    body = build(chat)
    assert body == {
        "system": [{"text": "Be helpful."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "What is here?"},
                    {"image": {"format": "jpeg", "source": {"bytes": JPEG_B64}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"text": "Let me check."},
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    },
                    {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather", "input": {}}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "tooluse_1",
                            "content": [{"text": "18C"}],
                            "status": "success",
                        }
                    },
                    {
                        "toolResult": {
                            "toolUseId": "tooluse_2",
                            "content": [{"text": "21C"}],
                            "status": "success",
                        }
                    },
                    {"text": "And now?"},
                ],
            },
        ],
        "inferenceConfig": {
            "maxTokens": 300,
            "temperature": 0.5,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "description": "Weather for a city.",
                        "inputSchema": {"json": weather.parameters},
                    }
                },
                {
                    "toolSpec": {
                        "name": "ping",
                        "inputSchema": {"json": {"type": "object", "properties": {}}},
                    }
                },
            ],
            "toolChoice": {"any": {}},
        },
    }
    # Nothing OpenAI-only leaks: seed, penalties, user, parallel_tool_calls, extra.
    assert "logprobs" not in upstream.body.decode()


@pytest.mark.parametrize(
    ("data", "mime", "size", "fmt"),
    [
        (png(40, 30), "image/png", (40, 30), "png"),
        (jpeg(64, 48), "image/jpeg", (64, 48), "jpeg"),
        (gif(16, 16), "image/gif", (16, 16), "gif"),
        (webp(20, 10), "image/webp", (20, 10), "webp"),
    ],
)
def test_one_image_of_each_format_uses_the_lowercase_enum(
    data: bytes, mime: str, size: tuple[int, int], fmt: str
) -> None:
    chat = request(Message("user", (Text("Describe."), inline(data, mime, *size))))
    image = build(chat)["messages"][0]["content"][1]["image"]
    assert image == {"format": fmt, "source": {"bytes": base64.b64encode(data).decode()}}


def test_several_images_and_an_image_in_history() -> None:
    chat = request(
        Message("user", (inline(png(), "image/png", 64, 48), Text("First?"))),
        Message("assistant", "A red box."),
        Message(
            "user",
            (
                Text("And these?"),
                inline(JPEG, "image/jpeg", 64, 48),
                inline(webp(), "image/webp", 20, 10),
            ),
        ),
    )
    turns = build(chat)["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["image"]["format"] for b in turns[0]["content"] if "image" in b] == ["png"]
    assert [b["image"]["format"] for b in turns[2]["content"] if "image" in b] == ["jpeg", "webp"]
    # Part order is kept: the image before the question stays first.
    assert "image" in turns[0]["content"][0]


def test_images_in_tool_results_are_kept() -> None:
    chat = request(
        Message("user", "Take a screenshot."),
        Message("assistant", tool_calls=(ToolCall("t1", "screenshot", "{}"),)),
        Message("tool", (Text("Here."), inline(png(), "image/png", 64, 48)), tool_call_id="t1"),
        tools=(Tool("screenshot"),),
    )
    result = build(chat)["messages"][2]["content"][0]["toolResult"]
    assert result["content"][0] == {"text": "Here."}
    assert result["content"][1]["image"]["format"] == "png"


def test_a_bare_data_uri_and_jpg_alias_are_translated() -> None:
    uri = f"data:image/jpg;base64,{JPEG_B64}"
    chat = request(Message("user", (Text("Describe."), Image(uri))))
    image = build(chat)["messages"][0]["content"][1]["image"]
    assert image == {"format": "jpeg", "source": {"bytes": JPEG_B64}}


def test_same_role_turns_merge_and_blank_text_is_dropped() -> None:
    chat = request(
        Message("user", "One."),
        Message("user", (Text("   "), Text("Two."))),
        Message("assistant", ""),
        Message("user", "Three."),
    )
    assert build(chat)["messages"] == [
        {"role": "user", "content": [{"text": "One."}, {"text": "Two."}, {"text": "Three."}]}
    ]


def test_tool_history_without_declared_tools_declares_the_tools_it_used() -> None:
    # Bedrock refuses toolUse/toolResult blocks without a toolConfig.
    chat = request(
        Message("user", "Weather?"),
        Message("assistant", tool_calls=(ToolCall("t1", "get_weather", '{"city":"Oslo"}'),)),
        Message("tool", "3C", tool_call_id="t1"),
    )
    assert build(chat)["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "inputSchema": {"json": {"type": "object", "properties": {}}},
                }
            }
        ]
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        (NamedToolChoice("lookup"), {"tool": {"name": "lookup"}}),
        (None, None),
    ],
)
def test_tool_choice(choice: Any, expected: dict[str, Any] | None) -> None:
    chat = request(Message("user", "Hi"), tools=(Tool("lookup", "Find."),), tool_choice=choice)
    config = build(chat)["toolConfig"]
    assert config.get("toolChoice") == expected
    assert config["tools"][0]["toolSpec"]["name"] == "lookup"


def test_tool_choice_none_leaves_the_tools_out_unless_history_needs_them() -> None:
    tools = (Tool("lookup"),)
    assert "toolConfig" not in build(
        request(Message("user", "Hi"), tools=tools, tool_choice="none")
    )
    chat = request(
        Message("user", "Hi"),
        Message("assistant", tool_calls=(ToolCall("t1", "lookup", "{}"),)),
        Message("tool", "found", tool_call_id="t1"),
        tools=tools,
        tool_choice="none",
    )
    assert build(chat)["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "lookup",
                    "inputSchema": {"json": {"type": "object", "properties": {}}},
                }
            }
        ]
    }


def test_strict_tools_are_flagged() -> None:
    chat = request(Message("user", "Hi"), tools=(Tool("f", None, {"type": "object"}, True),))
    assert build(chat)["toolConfig"]["tools"][0]["toolSpec"]["strict"] is True


def test_json_schema_becomes_native_structured_output() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    spec = {"name": "answer", "schema": schema, "strict": True}
    chat = request(Message("user", "Hi"), response_format=ResponseFormat("json_schema", spec))
    body = build(chat)
    assert body["outputConfig"] == {
        "textFormat": {
            "type": "json_schema",
            "structure": {
                "jsonSchema": {
                    "schema": json.dumps(schema, separators=(",", ":")),
                    "name": "answer",
                }
            },
        }
    }
    assert "system" not in body


def test_json_object_is_an_instruction() -> None:
    chat = request(
        Message("system", "Be brief."),
        Message("user", "Hi"),
        response_format=ResponseFormat("json_object"),
    )
    body = build(chat)
    assert body["system"] == [{"text": "Be brief."}, {"text": JSON_INSTRUCTION}]
    assert "outputConfig" not in body
    text = request(Message("user", "Hi"), response_format=ResponseFormat("text"))
    assert "system" not in build(text)


# ---------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(
    ("chat", "error", "param"),
    [
        (
            request(Message("user", (Image("https://example.com/cat.png"),))),
            ImageUrlNotSupportedError,
            "messages[0].content[0].image_url.url",
        ),
        (
            request(Message("user", (inline(b"x", "image/heic", 1, 1),))),
            UnsupportedImageFormatError,
            "messages[0].content[0].image_url.url",
        ),
        (
            request(
                Message("user", "Hi"), Message("assistant", (inline(JPEG, "image/jpeg", 1, 1),))
            ),
            InvalidRequestError,
            "messages[1].content[0]",
        ),
        (
            request(Message("system", (inline(JPEG, "image/jpeg", 1, 1),)), Message("user", "Hi")),
            InvalidRequestError,
            "messages[0].content[0]",
        ),
        (request(Message("user", (Audio("AAAA", "wav"),))), UnsupportedCapabilityError, None),
        (request(Message("user", (File(file_id="f"),))), UnsupportedCapabilityError, None),
        (request(Message("system", "Only rules.")), InvalidRequestError, "messages"),
        (
            request(Message("assistant", "Hi"), Message("user", "Yo")),
            InvalidRequestError,
            "messages",
        ),
        (request(Message("user", "Hi"), n=2), UnsupportedCapabilityError, "n"),
        (
            request(
                Message("user", "Hi"),
                Message("assistant", tool_calls=(ToolCall("t", "f", "[1]"),)),
            ),
            InvalidRequestError,
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            request(
                Message("user", "Hi"), Message("assistant", tool_calls=(ToolCall("t", "f", "{"),))
            ),
            InvalidRequestError,
            "messages[1].tool_calls[0].function.arguments",
        ),
        (request(Message("tool", "x")), InvalidRequestError, "messages[0].tool_call_id"),
    ],
)
def test_refusals(chat: ChatRequest, error: type[Exception], param: str | None) -> None:
    with pytest.raises(error) as caught:
        PROVIDER.build_request(chat, TARGET)
    if param is not None:
        assert getattr(caught.value, "param", None) == param


def test_a_url_image_refusal_explains_the_url_policy() -> None:
    chat = request(Message("user", (Image("https://example.com/cat.png"),)))
    with pytest.raises(ImageUrlNotSupportedError, match="url_policy 'fetch' or 'auto'"):
        PROVIDER.build_request(chat, TARGET)


# ---------------------------------------------------------------------------------------------
# URLs, regions and headers


@pytest.mark.parametrize(
    ("model", "path"),
    [
        (MODEL, f"/model/{MODEL}/converse"),
        ("amazon.nova-pro-v1:0", "/model/amazon.nova-pro-v1:0/converse"),
        (
            ARN,
            "/model/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile%2Fa1b2c3d4e5f6/converse",
        ),
        ("odd id", "/model/odd%20id/converse"),
    ],
)
def test_the_model_id_is_one_path_segment_the_http_client_keeps(model: str, path: str) -> None:
    url = PROVIDER.url(Target(SETTINGS, model), stream=False)
    assert urlsplit(url).path == path
    # aiohttp normalises URLs through yarl: the path it sends must be the path SigV4 signs.
    assert yarl.URL(url).raw_path == path


@pytest.mark.parametrize(
    ("base_url", "region"),
    [
        ("https://bedrock-runtime.eu-central-1.amazonaws.com", "eu-central-1"),
        ("https://bedrock-runtime-fips.us-gov-west-1.amazonaws.com/", "us-gov-west-1"),
        ("https://bedrock-runtime.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        ("http://127.0.0.1:8080/bedrock", "us-west-2"),  # not a Bedrock host: the AWS region
    ],
)
def test_region_and_base_url(base_url: str, region: str) -> None:
    target = Target(ProviderSettings(name="b", kind="bedrock", base_url=base_url), MODEL)
    assert PROVIDER.region(target) == region
    url = PROVIDER.build_request(request(Message("user", "Hi")), target).url
    assert url == f"{base_url.rstrip('/')}/model/{MODEL}/converse"


def test_region_comes_from_aws_region_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    provider = BedrockProvider(fixed_region(None))
    assert provider.url(TARGET, stream=True) == (
        f"https://bedrock-runtime.ap-southeast-2.amazonaws.com/model/{MODEL}/converse-stream"
    )


def test_region_from_aws_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    provider = BedrockProvider(AwsCredentialSource(botocore.session.Session))
    assert provider.region(TARGET) == "eu-west-1"


def test_no_region_anywhere_is_a_configuration_error() -> None:
    provider = BedrockProvider(fixed_region(None))
    with pytest.raises(UpstreamError, match="no AWS region"):
        provider.build_request(request(Message("user", "Hi")), TARGET)


def test_an_api_key_is_a_bearer_token_and_needs_no_signing() -> None:
    settings = ProviderSettings(name="b", kind="bedrock", api_key="ABSK-secret")
    upstream = PROVIDER.build_request(request(Message("user", "Hi")), Target(settings, MODEL))
    assert upstream.headers["Authorization"] == "Bearer ABSK-secret"
    assert PROVIDER.is_authorized(upstream)
    assert PROVIDER.stream_framing == "aws-eventstream"


def test_a_checked_pdf_becomes_a_document_block_with_a_valid_name() -> None:
    import hashlib

    from aperture.model import File, InlineDocument

    pdf = b"%PDF-1.4\n%%EOF\n"
    uri = "data:application/pdf;base64," + base64.b64encode(pdf).decode()
    info = InlineDocument("application/pdf", len(pdf), 1, hashlib.sha256(pdf).hexdigest(), 28)
    part = File(file_data=uri, filename="Q3 report (final)!!.v2.pdf", inline=info)
    body = build(request(Message("user", (part, Text("Summarise.")))))
    document = body["messages"][0]["content"][0]["document"]
    assert document["format"] == "pdf"
    assert document["name"] == "Q3 report (final) v2"
    assert base64.b64decode(document["source"]["bytes"]) == pdf


def test_cache_breakpoints_become_cache_points_where_they_were_set() -> None:
    mark = CacheMark()
    chat = request(
        Message("system", (Text("Shared preamble.", mark), Text("Be terse."))),
        Message("user", (Text("Long document text.", mark), Text("Question?"))),
        tools=(Tool("lookup", "Look a word up.", {"type": "object"}, cache=mark),),
    )
    body = build(chat)  # botocore's ParamValidator and the emulator accept it
    point = {"cachePoint": {"type": "default"}}
    assert body["system"] == [{"text": "Shared preamble."}, point, {"text": "Be terse."}]
    assert body["messages"][0]["content"] == [
        {"text": "Long document text."},
        point,
        {"text": "Question?"},
    ]
    tools = body["toolConfig"]["tools"]
    assert tools[0]["toolSpec"]["name"] == "lookup"
    assert tools[1] == point
