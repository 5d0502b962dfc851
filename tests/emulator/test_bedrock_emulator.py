"""The Bedrock emulator over HTTP: auth, validation, answers, event streams and scripted faults.

Its answers are read back by botocore itself (the rest-json parser, the event-stream parser
and the service model's output shapes), as boto3 would read the real service.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import botocore.session
import httpx2
import pytest
from botocore.eventstream import EventStream
from botocore.exceptions import EventStreamError
from botocore.model import StructureShape
from botocore.parsers import EventStreamJSONParser, create_parser
from botocore.validate import ParamValidator
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from aperture.emulator.bedrock import LATENCY_MS, MIDSTREAM_DELTAS, TOOL_USE_TOKENS, routes
from aperture.emulator.bedrock_errors import EMULATOR_ACCESS_KEY
from aperture.upstream.eventstream import EventStreamDecoder, Frame
from tests.sample_images import gif, jpeg, png, webp

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
URL = f"/bedrock/model/{MODEL}/converse"
STREAM_URL = f"/bedrock/model/{MODEL}/converse-stream"
AUTH = {"authorization": "Bearer ABSK-test"}
SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")
CONVERSE = SERVICE.operation_model("Converse")
CONVERSE_STREAM = SERVICE.operation_model("ConverseStream")


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = Starlette(routes=[Mount("/bedrock", routes=routes())])
    with TestClient(app) as test_client:
        yield test_client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image(fmt: str, data: bytes) -> dict[str, Any]:
    return {"image": {"format": fmt, "source": {"bytes": b64(data)}}}


def user(*blocks: dict[str, Any], text: str = "Describe this image.") -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}, *blocks]}


def body(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"messages": list(messages), **fields}


def post(client: TestClient, payload: Any, url: str = URL, **headers: str) -> httpx2.Response:
    return client.post(url, content=json.dumps(payload), headers={**AUTH, **headers})


def converse(client: TestClient, payload: Any, **headers: str) -> dict[str, Any]:
    """A successful Converse answer, checked against the output shape and parsed by botocore."""
    response = post(client, payload, **headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer: dict[str, Any] = response.json()
    assert CONVERSE.output_shape is not None
    report = ParamValidator().validate(answer, CONVERSE.output_shape)
    assert not report.has_errors(), report.generate_report()
    raw = {"status_code": 200, "headers": dict(response.headers), "body": response.content}
    parsed = create_parser("rest-json").parse(raw, CONVERSE.output_shape)
    assert parsed["output"] == answer["output"]
    return answer


def refused(response: httpx2.Response, status: int, name: str) -> str:
    """The message of a Bedrock error, after checking how botocore reads it."""
    assert response.status_code == status, response.text
    assert response.headers["x-amzn-errortype"].split(":")[0] == name
    assert response.headers["x-amzn-requestid"]
    raw = {"status_code": status, "headers": dict(response.headers), "body": response.content}
    assert CONVERSE.output_shape is not None
    parsed = create_parser("rest-json").parse(raw, CONVERSE.output_shape)
    assert parsed["Error"]["Code"] == name
    message: str = response.json()["message"]
    assert parsed["Error"]["Message"] == message
    return message


class _Raw:
    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self) -> Iterator[bytes]:
        yield self._content

    def close(self) -> None:
        pass


def stream(
    client: TestClient, payload: Any, **headers: str
) -> tuple[list[Frame], EventStream[Any]]:
    """The frames of a ConverseStream answer, and the events botocore parses from them."""
    response = post(client, payload, STREAM_URL, **headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    frames = EventStreamDecoder().feed(response.content)
    assert CONVERSE_STREAM.output_shape is not None
    shape = CONVERSE_STREAM.output_shape.members["stream"]
    assert isinstance(shape, StructureShape)
    for frame in frames:
        if frame.headers[":message-type"] == "event":
            member = shape.members[frame.headers[":event-type"]]
            payload_ = {k: v for k, v in json.loads(frame.payload).items() if k != "p"}
            report = ParamValidator().validate(payload_, member)
            assert not report.has_errors(), report.generate_report()
    parser = EventStreamJSONParser()
    events: EventStream[Any] = EventStream(_Raw(response.content), shape, parser, "ConverseStream")
    return frames, events


# ---------------------------------------------------------------------------------------------
# Answers


def test_text_answer_and_usage(client: TestClient) -> None:
    answer = converse(client, body({"role": "user", "content": [{"text": "Hello there"}]}))
    assert answer == {
        "output": {
            "message": {
                "role": "assistant",
                "content": [{"text": 'Saw no images. Asked: "Hello there"'}],
            }
        },
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 6, "totalTokens": 9},
        "metrics": {"latencyMs": LATENCY_MS},
    }


def test_one_image(client: TestClient) -> None:
    answer = converse(client, body(user(image("png", png(64, 48))), system=[{"text": "Be terse."}]))
    text = answer["output"]["message"]["content"][0]["text"]
    assert text == (
        'Saw 1 image: #1 image/png 64x48 detail=auto. Asked: "Describe this image." '
        'System: "Be terse."'
    )
    # Claude's patch formula: ceil(64/28) * ceil(48/28) = 6, plus 29 characters / 4.
    assert answer["usage"]["inputTokens"] == 6 + 8


def test_several_images_and_an_image_in_history(client: TestClient) -> None:
    payload = body(
        user(image("jpeg", jpeg(64, 48)), text="First?"),
        {"role": "assistant", "content": [{"text": "A blue box."}]},
        user(image("gif", gif(16, 16)), image("webp", webp(20, 10)), text="And these?"),
    )
    response = post(client, payload)
    text = converse(client, payload)["output"]["message"]["content"][0]["text"]
    assert text == (
        "Saw 3 images: #1 image/jpeg 64x48 detail=auto, #2 image/gif 16x16 detail=auto, "
        '#3 image/webp 20x10 detail=auto. Asked: "And these?"'
    )
    assert json.loads(response.headers["x-emulator-received"]) == {
        "images": 3,
        "mimes": ["image/jpeg", "image/gif", "image/webp"],
        "sizes": ["64x48", "16x16", "20x10"],
        "extra_fields": [],
    }


@pytest.mark.parametrize(
    "payload",
    [
        body(
            user(text="Hi"),
            outputConfig={
                "textFormat": {
                    "type": "json_schema",
                    "structure": {"jsonSchema": {"schema": '{"type":"object"}'}},
                }
            },
        ),
        body(user(text="Hi"), system=[{"text": "Respond with a single JSON object."}]),
    ],
)
def test_json_mode(client: TestClient, payload: dict[str, Any]) -> None:
    text = converse(client, payload)["output"]["message"]["content"][0]["text"]
    assert json.loads(text) == {"images": 0, "asked": "Hi"}


def test_stop_sequences_and_max_tokens(client: TestClient) -> None:
    stopped = converse(client, body(user(text="Hi"), inferenceConfig={"stopSequences": ["Asked"]}))
    assert stopped["stopReason"] == "stop_sequence"
    assert stopped["output"]["message"]["content"][0]["text"] == "Saw no images. "
    cut = converse(client, body(user(text="Hi"), inferenceConfig={"maxTokens": 2}))
    assert cut["stopReason"] == "max_tokens"
    assert cut["output"]["message"]["content"][0]["text"] == "Saw no"
    assert cut["usage"]["outputTokens"] == 2


TOOLS = {
    "tools": [
        {"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}},
        {"toolSpec": {"name": "other", "inputSchema": {"json": {"type": "object"}}}},
    ]
}


@pytest.mark.parametrize(
    ("choice", "name"), [({"any": {}}, "lookup"), ({"tool": {"name": "other"}}, "other")]
)
def test_a_forced_tool_is_called(client: TestClient, choice: dict[str, Any], name: str) -> None:
    payload = body(user(text="Find it"), toolConfig={**TOOLS, "toolChoice": choice})
    answer = converse(client, payload)
    (block,) = answer["output"]["message"]["content"]
    assert block["toolUse"]["name"] == name
    assert block["toolUse"]["input"] == {"text": "Find it"}
    assert answer["stopReason"] == "tool_use"
    assert answer["usage"]["outputTokens"] == TOOL_USE_TOKENS


def test_a_tool_round_trip_is_accepted(client: TestClient) -> None:
    payload = body(
        user(text="Weather?"),
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {}}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "t1",
                        "content": [{"text": "Sunny"}],
                        "status": "success",
                    }
                },
                {"text": "Thanks"},
            ],
        },
        toolConfig=TOOLS,
    )
    text = converse(client, payload)["output"]["message"]["content"][0]["text"]
    assert text == 'Saw no images. Asked: "Thanks"'


def test_an_arn_model_id_routes(client: TestClient) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.anthropic.claude-v1:0"
    response = post(client, body(user(text="Hi")), f"/bedrock/model/{arn}/converse")
    assert response.status_code == 200


# ---------------------------------------------------------------------------------------------
# Streams


def test_a_text_stream(client: TestClient) -> None:
    frames, events = stream(client, body(user(text="Hi there")))
    kinds = [f.headers[":event-type"] for f in frames]
    assert kinds[0] == "messageStart"
    assert kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    assert all(json.loads(f.payload)["p"] for f in frames), "padded like Bedrock's"
    parsed = list(events)
    text = "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in parsed if "contentBlockDelta" in e
    )
    assert text == 'Saw no images. Asked: "Hi there"'
    assert parsed[-2] == {"messageStop": {"stopReason": "end_turn"}}
    assert parsed[-1]["metadata"]["usage"] == {
        "inputTokens": 2,
        "outputTokens": 6,
        "totalTokens": 8,
    }


def test_a_tool_stream(client: TestClient) -> None:
    payload = body(user(text="Find"), toolConfig={**TOOLS, "toolChoice": {"any": {}}})
    _, events = stream(client, payload)
    parsed = list(events)
    start = parsed[1]["contentBlockStart"]
    assert start["start"]["toolUse"]["name"] == "lookup"
    pieces = [
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in parsed
        if "contentBlockDelta" in e
    ]
    assert json.loads("".join(pieces)) == {"text": "Find"}
    assert parsed[-2] == {"messageStop": {"stopReason": "tool_use"}}


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("midstream", "modelStreamErrorException"),
        ("midstream,status=429", "throttlingException"),
        ("status=503,midstream", "serviceUnavailableException"),
    ],
)
def test_a_midstream_fault_is_an_exception_frame(client: TestClient, fault: str, kind: str) -> None:
    frames, events = stream(client, body(user(text="Hi there")), **{"x-emulator-fault": fault})
    deltas = [f for f in frames if f.headers.get(":event-type") == "contentBlockDelta"]
    assert len(deltas) == MIDSTREAM_DELTAS
    last = frames[-1]
    assert last.headers[":message-type"] == "exception"
    assert last.headers[":exception-type"] == kind
    assert json.loads(last.payload)["message"]
    with pytest.raises(EventStreamError) as caught:
        list(events)
    assert caught.value.response["Error"]["Code"] == kind


# ---------------------------------------------------------------------------------------------
# Authentication


@pytest.mark.parametrize(
    ("authorization", "name"),
    [
        (None, "UnrecognizedClientException"),
        ("Bearer ", "UnrecognizedClientException"),
        ("Basic abc", "UnrecognizedClientException"),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock",
            "IncompleteSignatureException",
        ),
    ],
)
def test_unusable_credentials_are_refused(
    client: TestClient, authorization: str | None, name: str
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    response = client.post(URL, content=json.dumps(body(user(text="Hi"))), headers=headers)
    refused(response, 403, name)


def test_sigv4_from_other_keys_is_accepted_unverified(client: TestClient) -> None:
    authorization = (
        "AWS4-HMAC-SHA256 Credential=AKIDOTHER/20260101/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    )
    headers = {"authorization": authorization, "x-amz-date": "20260101T000000Z"}
    assert post(client, body(user(text="Hi")), **headers).status_code == 200


def test_the_emulator_key_must_sign_correctly(client: TestClient) -> None:
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={EMULATOR_ACCESS_KEY}/20260101/us-east-1/bedrock/"
        "aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
    )
    headers = {"authorization": authorization, "x-amz-date": "20260101T000000Z"}
    message = refused(
        post(client, body(user(text="Hi")), **headers), 403, "InvalidSignatureException"
    )
    assert message.startswith("The request signature we calculated does not match")


# ---------------------------------------------------------------------------------------------
# Validation


def test_the_schema_is_botocores(client: TestClient) -> None:
    payload = {"messages": [{"role": "user", "content": [{"text": "Hi", "image": {}}]}], "foo": 1}
    message = refused(post(client, payload), 400, "ValidationException")
    assert 'Unknown parameter in input: "foo"' in message
    assert (
        "Invalid number of parameters set for tagged union structure messages[0].content[0]"
        in message
    )
    missing = refused(post(client, {"messages": [{"role": "user"}]}), 400, "ValidationException")
    assert 'Missing required parameter in messages[0]: "content"' in missing
    typed = refused(
        post(client, body(user(text="Hi"), inferenceConfig={"maxTokens": "9"})),
        400,
        "ValidationException",
    )
    assert "Invalid type for parameter inferenceConfig.maxTokens" in typed


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            body(user(image("jpg", jpeg()))),
            "Value 'jpg' at 'messages.0.content.1.image.format' failed to satisfy constraint: "
            "Member must satisfy enum value set: [gif, jpeg, png, webp]",
        ),
        (body(user(image("PNG", png()))), "Value 'PNG' at 'messages.0.content.1.image.format'"),
        (body(user(image("png", jpeg()))), "Image does not match the provided format png"),
        (
            body(user({"image": {"format": "png", "source": {"bytes": "***"}}})),
            "messages.0.content.1.image.source.bytes: Invalid base64-encoded image.",
        ),
        (body(user(image("png", b"not an image"))), "Could not process image"),
        (
            body(user(*[image("png", png(8, 8))] * 21)),
            "Too many images in the request: 21 > 20",
        ),
        (
            body({"role": "user", "content": [{"text": "  "}]}),
            "The text field in the ContentBlock object at messages.0.content.0 is blank.",
        ),
        (
            body({"role": "assistant", "content": [{"text": "Hi"}]}),
            "A conversation must start with a user message.",
        ),
        (
            body(user(text="a"), user(text="b")),
            "A conversation must alternate between user and assistant roles.",
        ),
        (
            body(user(text="a"), {"role": "assistant", "content": [image("png", png())]}),
            "images are only allowed in user messages",
        ),
        (
            body(
                user(text="a"),
                {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}],
                },
                {"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": []}}]},
            ),
            "The toolConfig field must be defined when using toolUse and toolResult content",
        ),
        (
            body(
                user(text="a"),
                {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}],
                },
                user(text="no result"),
                toolConfig=TOOLS,
            ),
            "`tool_use` ids were found without `tool_result` blocks immediately after: t",
        ),
        (
            body(user(text="a"), inferenceConfig={"temperature": 1.5}),
            "Value '1.5' at 'inferenceConfig.temperature' failed to satisfy constraint",
        ),
        (
            body(user(text="a"), toolConfig={**TOOLS, "toolChoice": {"tool": {"name": "nope"}}}),
            "Tool 'nope' not found in tools",
        ),
        (
            body(
                user(text="a"),
                toolConfig={
                    "tools": [
                        {
                            "toolSpec": {
                                "name": "bad name",
                                "inputSchema": {"json": {"type": "object"}},
                            }
                        }
                    ]
                },
            ),
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]{1,64}",
        ),
    ],
)
def test_what_bedrock_refuses(client: TestClient, payload: dict[str, Any], message: str) -> None:
    assert message in refused(post(client, payload), 400, "ValidationException")


def test_a_five_megabyte_base64_string_is_too_large(client: TestClient) -> None:
    oversized = "A" * (5 * 1024 * 1024 + 4)
    payload = body(user({"image": {"format": "png", "source": {"bytes": oversized}}}))
    message = refused(post(client, payload), 400, "ValidationException")
    assert message.endswith(f"image exceeds 5 MB maximum: {len(oversized)} bytes > 5242880 bytes")


def test_malformed_json_is_refused(client: TestClient) -> None:
    response = client.post(URL, content=b"{", headers=AUTH)
    assert "Malformed input request" in refused(response, 400, "ValidationException")


# ---------------------------------------------------------------------------------------------
# Scripted faults


@pytest.mark.parametrize(
    ("fault", "status", "name"),
    [
        ("status=429", 429, "ThrottlingException"),
        ("quota", 400, "ServiceQuotaExceededException"),
        ("status=503", 503, "ServiceUnavailableException"),
        ("status=500", 500, "InternalServerException"),
        ("status=408", 408, "ModelTimeoutException"),
        ("status=403", 403, "AccessDeniedException"),
        ("status=400", 400, "ValidationException"),
        ("status=502", 502, "InternalServerException"),
        ("status=409", 409, "ValidationException"),
        ("delay=1,status=429", 429, "ThrottlingException"),
        ("bogus", 400, "ValidationException"),
    ],
)
def test_scripted_faults(client: TestClient, fault: str, status: int, name: str) -> None:
    for url in (URL, STREAM_URL):
        response = post(client, body(user(text="Hi")), url, **{"x-emulator-fault": fault})
        refused(response, status, name)


def test_midstream_on_a_plain_request_answers_normally(client: TestClient) -> None:
    converse(client, body(user(text="Hi")), **{"x-emulator-fault": "midstream"})
