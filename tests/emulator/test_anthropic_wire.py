"""The Anthropic emulator over HTTP: auth, validation, images, answers, streams, faults."""

from __future__ import annotations

import base64
import io
import json
import math
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from aperture.emulator import anthropic as emulator
from aperture.emulator.anthropic_request import image_tokens
from aperture.emulator.describe import SeenImage

URL = "/anthropic/v1/messages"
HEADERS = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = Starlette(routes=[Mount("/anthropic", routes=emulator.routes())])
    with TestClient(app) as test_client:
        yield test_client


def image_bytes(fmt: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, fmt)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image_block(media_type: str, data: str) -> dict[str, Any]:
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }


def url_block(url: str) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "url", "url": url}}


def user(*blocks: dict[str, Any], text: str = "Describe this image.") -> dict[str, Any]:
    return {"role": "user", "content": [*blocks, {"type": "text", "text": text}]}


def body(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "emulator-vision", "max_tokens": 100, "messages": list(messages), **fields}


def post(client: TestClient, payload: Any, **headers: str) -> httpx2.Response:
    return client.post(URL, json=payload, headers={**HEADERS, **headers})


def error_of(response: httpx2.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    envelope = response.json()
    assert envelope["type"] == "error"
    assert envelope["request_id"] == response.headers["request-id"]
    assert set(envelope["error"]) == {"type", "message"}
    message: str = envelope["error"]["message"]
    return message


def error_type(response: httpx2.Response) -> str:
    kind: str = response.json()["error"]["type"]
    return kind


def sse(response: httpx2.Response) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs; the raw framing is checked on the way."""
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for frame in response.text.split("\n\n"):
        if not frame:
            continue
        name_line, data_line = frame.split("\n")
        assert name_line.startswith("event: ")
        assert data_line.startswith("data: ")
        name, data = name_line[7:], json.loads(data_line[6:])
        assert data["type"] == name
        events.append((name, data))
    return events


# ---------------------------------------------------------------------------------------------
# Auth, routing, framing


@pytest.mark.parametrize(
    "headers",
    [
        {"anthropic-version": "2023-06-01"},
        {"x-api-key": " ", "anthropic-version": "2023-06-01"},
        {"authorization": "Basic abc", "anthropic-version": "2023-06-01"},
    ],
)
def test_missing_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(URL, json=body(user()), headers=headers)
    assert error_of(response, 401) == "x-api-key header is required"
    assert error_type(response) == "authentication_error"


def test_bearer_key_is_accepted_as_the_sdk_sends_it(client: TestClient) -> None:
    headers = {"authorization": "Bearer k", "anthropic-version": "2026-10-21"}
    assert client.post(URL, json=body(user()), headers=headers).status_code == 200


def test_version_header_is_required_and_dated(client: TestClient) -> None:
    response = client.post(URL, json=body(user()), headers={"x-api-key": "k"})
    assert error_of(response) == "anthropic-version: header is required"
    assert error_type(response) == "invalid_request_error"
    response = post(client, body(user()), **{"anthropic-version": "latest"})
    assert error_of(response) == "anthropic-version: invalid version 'latest'"


def test_unknown_url_uses_the_envelope(client: TestClient) -> None:
    response = client.get("/anthropic/v1/nope", headers=HEADERS)
    assert response.status_code == 404
    assert response.json()["error"] == {"type": "not_found_error", "message": "Not Found"}
    assert client.get(URL, headers=HEADERS).status_code == 404


def test_models_list(client: TestClient) -> None:
    response = client.get("/anthropic/v1/models", headers=HEADERS)
    assert response.status_code == 200
    payload = response.json()
    assert [m["id"] for m in payload["data"]] == list(emulator.MODELS)
    assert payload["has_more"] is False
    assert client.get("/anthropic/v1/models").status_code == 401


def test_request_id_and_received_headers(client: TestClient) -> None:
    png = b64(image_bytes("PNG", (30, 20)))
    response = post(
        client, body(user(image_block("image/png", png), url_block("https://cdn.example/x.jpg")))
    )
    assert response.headers["request-id"].startswith("req_")
    assert json.loads(response.headers[emulator.RECEIVED_HEADER]) == {
        "images": 2,
        "mimes": ["image/png", "url"],
        "sizes": ["30x20", "unknown"],
        "extra_fields": [],
    }


# ---------------------------------------------------------------------------------------------
# Validation


def test_malformed_json(client: TestClient) -> None:
    response = client.post(URL, content=b"{", headers=HEADERS)
    assert "error parsing the body" in error_of(response)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"max_tokens": 5, "messages": []}, "model: Field required"),
        ({"model": "m", "messages": []}, "max_tokens: Field required"),
        ({"model": "m", "max_tokens": 5}, "messages: Field required"),
        (
            {"model": "m", "max_tokens": 5, "messages": []},
            "messages: at least one message is required",
        ),
        ({"model": 3, "max_tokens": 5, "messages": []}, "model: Input should be a valid string"),
        (
            {"model": "m", "max_tokens": "5", "messages": []},
            "max_tokens: Input should be a valid integer",
        ),
        (
            {"model": "m", "max_tokens": -1, "messages": []},
            "max_tokens: Input should be greater than or equal to 0",
        ),
        ([1], "body: Input should be a valid dictionary"),
    ],
)
def test_required_fields(client: TestClient, payload: Any, message: str) -> None:
    assert error_of(post(client, payload)) == message


@pytest.mark.parametrize("field", ["stream_options", "response_format", "n", "seed", "user"])
def test_openai_only_fields_are_refused(client: TestClient, field: str) -> None:
    response = post(client, body(user(), **{field: 1}))
    assert error_of(response) == f"{field}: Extra inputs are not permitted"


def test_openai_message_fields_are_refused(client: TestClient) -> None:
    message = {"role": "user", "content": "hi", "name": "bob"}
    assert error_of(post(client, body(message))) == (
        "messages.0.name: Extra inputs are not permitted"
    )


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (
            [{"role": "assistant", "content": "Hi"}],
            'messages: first message must use the "user" role',
        ),
        (
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            'messages: roles must alternate between "user" and "assistant", but found multiple '
            '"user" roles in a row',
        ),
        (
            [{"role": "system", "content": "a"}],
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            [{"role": "user", "content": ""}],
            "messages.0: all messages must have non-empty content except for the optional final "
            "assistant message",
        ),
        (
            [{"role": "user", "content": [{"type": "text", "text": ""}]}],
            "messages: text content blocks must be non-empty",
        ),
        (
            [{"role": "user", "content": [{"type": "text", "text": " \n"}]}],
            "messages: text content blocks must contain non-whitespace text",
        ),
        ([{"role": "user"}], "messages.0.content: Field required"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            "messages.0.content.0: Input tag 'image_url' found using 'type' does not match any "
            "of the expected tags: 'document', 'image', 'text', 'tool_result'",
        ),
        (
            [
                {"role": "user", "content": "Look"},
                {"role": "assistant", "content": [url_block("https://a.example/x.png")]},
            ],
            "messages.1.content.0: Input tag 'image' found using 'type' does not match any of "
            "the expected tags: 'redacted_thinking', 'text', 'thinking', 'tool_use'",
        ),
    ],
)
def test_turn_rules(client: TestClient, messages: list[Any], message: str) -> None:
    assert error_of(post(client, body(*messages))) == message


def test_final_assistant_prefill_may_be_empty(client: TestClient) -> None:
    response = post(client, body(user(), {"role": "assistant", "content": ""}))
    assert response.status_code == 200


def test_system_string_or_text_blocks(client: TestClient) -> None:
    for system in (
        "Be  brief.",
        [{"type": "text", "text": "Be"}, {"type": "text", "text": "brief."}],
    ):
        answer = post(client, body(user(text="Hi"), system=system)).json()["content"][0]["text"]
        assert answer == 'Saw no images. Asked: "Hi" System: "Be brief."'
    response = post(client, body(user(), system=[{"type": "image"}]))
    assert "system.0: Input tag 'image'" in error_of(response)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", 1.5, "temperature: Input should be less than or equal to 1"),
        ("temperature", "hot", "temperature: Input should be a valid number"),
        ("top_p", -0.1, "top_p: Input should be greater than or equal to 0"),
        ("top_k", 1.5, "top_k: Input should be a valid integer"),
        ("stream", "yes", "stream: Input should be a valid boolean"),
        ("stop_sequences", "END", "stop_sequences: Input should be a valid list"),
        ("metadata", {"session": "x"}, "metadata.session: Extra inputs are not permitted"),
    ],
)
def test_sampling_fields(client: TestClient, field: str, value: Any, message: str) -> None:
    assert error_of(post(client, body(user(), **{field: value}))) == message


# ---------------------------------------------------------------------------------------------
# Images


def test_describes_base64_and_url_images(client: TestClient) -> None:
    jpeg = b64(image_bytes("JPEG", (64, 48)))
    png = b64(image_bytes("PNG", (100, 30)))
    payload = body(
        user(
            image_block("image/jpeg", jpeg),
            image_block("image/png", png),
            url_block("https://images.example.org/cat.jpg?size=1"),
            text="What is this?",
        )
    )
    response = post(client, payload)
    assert response.status_code == 200, response.text
    message = response.json()
    text = (
        "Saw 3 images: #1 image/jpeg 64x48 detail=auto, #2 image/png 100x30 detail=auto, "
        '#3 url image from images.example.org detail=auto. Asked: "What is this?"'
    )
    assert message["content"] == [{"type": "text", "text": text}]
    assert message["stop_reason"] == "end_turn"
    assert message["stop_sequence"] is None
    # 13 chars -> 4; 64x48 -> 3*2; 100x30 -> 4*2; url -> flat 85.
    assert message["usage"]["input_tokens"] == 4 + 6 + 8 + 85
    assert message["usage"]["output_tokens"] == len(text.split())


def test_image_tokens_follow_the_patch_formula() -> None:
    assert image_tokens(SeenImage("auto", "image/png", 1092, 1092)) == 39 * 39
    assert image_tokens(SeenImage("auto", "image/png", 29, 28)) == 2
    assert image_tokens(SeenImage("auto", host="a.example")) == 85


def test_gif_and_webp_and_animated_gif_are_accepted(client: TestClient) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50)
    blocks = [
        image_block("image/gif", b64(buffer.getvalue())),
        image_block("image/webp", b64(image_bytes("WEBP", (10, 10)))),
    ]
    response = post(client, body(user(*blocks)))
    assert response.status_code == 200, response.text
    assert "#1 image/gif 8x8" in response.json()["content"][0]["text"]


@pytest.mark.parametrize("media_type", ["image/jpg", "image/bmp", "IMAGE/PNG", "application/pdf"])
def test_media_type_must_be_one_of_four_exactly(client: TestClient, media_type: str) -> None:
    response = post(client, body(user(image_block(media_type, b64(image_bytes("PNG", (4, 4)))))))
    assert error_of(response) == (
        "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', "
        "'image/png', 'image/gif' or 'image/webp'"
    )


def test_declared_type_must_match_the_bytes(client: TestClient) -> None:
    png = b64(image_bytes("PNG", (4, 4)))
    response = post(client, body(user(image_block("image/jpeg", png))))
    assert error_of(response) == (
        "messages.0.content.0.image.source.base64.data: Image does not match the provided media "
        "type image/jpeg"
    )


@pytest.mark.parametrize(
    "data",
    [
        "not base64!",
        base64.b64encode(b"just some text, not an image").decode(),
        b64(image_bytes("BMP", (4, 4))),
        "iVBORw0KGgo=",  # a PNG signature and nothing else
    ],
)
def test_undecodable_images(client: TestClient, data: str) -> None:
    response = post(client, body(user(image_block("image/png", data))))
    message = error_of(response)
    assert message.startswith("messages.0.content.0.image.source.base64.data: ")
    assert message.endswith(("Could not process image", "media type image/png"))


def test_over_5_mb_of_base64_is_refused_with_anthropics_wording(client: TestClient) -> None:
    data = "A" * (5 * 1024 * 1024 + 4)
    response = post(client, body(user(image_block("image/png", data))))
    assert error_of(response) == (
        "messages.0.content.0.image.source.base64: image exceeds 5 MB maximum: 5242884 bytes > "
        "5242880 bytes"
    )


def test_exactly_5_mb_is_not_refused_for_size(client: TestClient) -> None:
    data = "A" * (5 * 1024 * 1024)
    message = error_of(post(client, body(user(image_block("image/png", data)))))
    assert "exceeds" not in message


def test_dimensions_over_8000_are_refused(client: TestClient) -> None:
    wide = b64(image_bytes("PNG", (8001, 2)))
    response = post(client, body(user(image_block("image/png", wide))))
    assert error_of(response) == (
        "messages.0.content.0.image.source.base64.data: At least one of the image dimensions "
        "exceed max allowed size: 8000 pixels"
    )
    ok = b64(image_bytes("PNG", (8000, 2)))
    assert post(client, body(user(image_block("image/png", ok)))).status_code == 200


def test_many_images_lower_the_dimension_limit(client: TestClient) -> None:
    small = image_block("image/png", b64(image_bytes("PNG", (4, 4))))
    wide = image_block("image/png", b64(image_bytes("PNG", (2001, 2))))
    assert post(client, body(user(*[small] * 19, wide))).status_code == 200
    response = post(client, body(user(*[small] * 20, wide)))
    assert error_of(response) == (
        "messages.0.content.20.image.source: At least one of the image dimensions exceed max "
        "allowed size for many-image requests: 2000 pixels"
    )


def test_too_many_images(client: TestClient) -> None:
    url = url_block("https://a.example/x.png")
    assert post(client, body(user(*[url] * 100))).status_code == 200
    assert "101 > 100" in error_of(post(client, body(user(*[url] * 101))))


@pytest.mark.parametrize("url", ["ftp://a.example/x.png", "https://", "data:image/png;base64,AA"])
def test_url_sources_need_http_and_a_host(client: TestClient, url: str) -> None:
    response = post(client, body(user(url_block(url))))
    assert error_of(response) == (
        "messages.0.content.0.image.source.url.url: Input should be a valid URL"
    )


def test_unknown_source_type(client: TestClient) -> None:
    block = {"type": "image", "source": {"type": "file", "file_id": "f"}}
    assert "Input tag 'file'" in error_of(post(client, body(user(block))))


# ---------------------------------------------------------------------------------------------
# Answers


def test_same_request_same_answer(client: TestClient) -> None:
    first = post(client, body(user())).json()
    assert post(client, body(user())).json() == first
    assert first["id"].startswith("msg_")


def test_asked_is_the_last_user_turn_with_text(client: TestClient) -> None:
    messages = [
        user(text="First question"),
        {"role": "assistant", "content": "An answer."},
        user(text="Second question"),
    ]
    text = post(client, body(*messages)).json()["content"][0]["text"]
    assert text == 'Saw no images. Asked: "Second question"'


def test_stop_sequences_cut_at_the_first_match(client: TestClient) -> None:
    message = post(client, body(user(text="Hi"), stop_sequences=["Hi", "Asked"])).json()
    assert message["content"] == [{"type": "text", "text": "Saw no images. "}]
    assert message["stop_reason"] == "stop_sequence"
    assert message["stop_sequence"] == "Asked"
    unmatched = post(client, body(user(text="Hi"), stop_sequences=["zzz"])).json()
    assert unmatched["stop_reason"] == "end_turn"


def test_max_tokens_cuts_words(client: TestClient) -> None:
    message = post(client, body(user(text="Hi"), max_tokens=2)).json()
    assert message["content"] == [{"type": "text", "text": "Saw no"}]
    assert message["stop_reason"] == "max_tokens"
    assert message["usage"]["output_tokens"] == 2
    empty = post(client, body(user(text="Hi"), max_tokens=0)).json()
    assert empty["content"] == []
    assert empty["stop_reason"] == "max_tokens"


def _tools() -> list[dict[str, Any]]:
    schema = {"type": "object", "properties": {"text": {"type": "string"}}}
    return [
        {"name": "first", "description": "First.", "input_schema": schema},
        {"name": "second", "input_schema": schema},
    ]


@pytest.mark.parametrize(
    ("choice", "name"),
    [({"type": "any"}, "first"), ({"type": "tool", "name": "second"}, "second")],
)
def test_forced_tool_choice_answers_with_tool_use(
    client: TestClient, choice: dict[str, Any], name: str
) -> None:
    message = post(client, body(user(text="Echo me"), tools=_tools(), tool_choice=choice)).json()
    (block,) = message["content"]
    assert block["type"] == "tool_use"
    assert block["id"].startswith("toolu_")
    assert (block["name"], block["input"]) == (name, {"text": "Echo me"})
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["output_tokens"] == emulator.TOOL_USE_TOKENS


@pytest.mark.parametrize("choice", [None, {"type": "auto"}, {"type": "none"}])
def test_unforced_tool_choice_answers_with_text(
    client: TestClient, choice: dict[str, Any] | None
) -> None:
    payload = body(user(text="Hi"), tools=_tools())
    if choice is not None:
        payload["tool_choice"] = choice
    assert post(client, payload).json()["content"][0]["type"] == "text"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"tool_choice": {"type": "any"}},
            "tool_choice may only be specified while providing tools",
        ),
        (
            {"tools": _tools(), "tool_choice": {"type": "tool", "name": "third"}},
            "tool_choice.tool.name: Tool 'third' not found in tools",
        ),
        ({"tools": _tools(), "tool_choice": {"type": "required"}}, "Input tag 'required'"),
        (
            {"tools": _tools(), "tool_choice": "auto"},
            "tool_choice: Input should be a valid dictionary",
        ),
        ({"tools": [{"name": "x"}]}, "tools.0.input_schema: Field required"),
        (
            {"tools": [{"name": "x", "input_schema": {"type": "array"}}]},
            "tools.0.input_schema.type: Input should be 'object'",
        ),
        ({"tools": [{"type": "function", "function": {}}]}, "tools.0.name: Field required"),
    ],
)
def test_tool_errors(client: TestClient, fields: dict[str, Any], message: str) -> None:
    assert message in error_of(post(client, body(user(), **fields)))


def _tool_turns(result_ids: list[str]) -> list[dict[str, Any]]:
    uses = [
        {"type": "tool_use", "id": f"toolu_{n}", "name": "first", "input": {"text": n}}
        for n in ("a", "b")
    ]
    results = [{"type": "tool_result", "tool_use_id": i, "content": "ok"} for i in result_ids]
    return [
        user(text="Go"),
        {"role": "assistant", "content": uses},
        {"role": "user", "content": [*results, {"type": "text", "text": "Next?"}]},
    ]


def test_tool_results_answer_the_previous_tool_uses(client: TestClient) -> None:
    response = post(client, body(*_tool_turns(["toolu_a", "toolu_b"]), tools=_tools()))
    assert response.status_code == 200
    assert response.json()["content"][0]["text"] == 'Saw no images. Asked: "Next?"'
    missing = error_of(post(client, body(*_tool_turns(["toolu_a"]), tools=_tools())))
    assert missing == (
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_b. Each `tool_use` block must have a corresponding `tool_result` block in the "
        "next message."
    )
    unexpected = error_of(post(client, body(*_tool_turns(["toolu_a", "toolu_b", "toolu_z"]))))
    assert unexpected.startswith(
        "messages.2: unexpected `tool_use_id` found in `tool_result` blocks: toolu_z."
    )


def test_tool_result_with_an_image_counts_it(client: TestClient) -> None:
    turns = _tool_turns(["toolu_a", "toolu_b"])
    png = image_block("image/png", b64(image_bytes("PNG", (10, 10))))
    turns[2]["content"][0]["content"] = [{"type": "text", "text": "shot"}, png]
    message = post(client, body(*turns)).json()
    assert message["content"][0]["text"].startswith("Saw 1 image: #1 image/png 10x10")


def test_json_mode_by_instruction_or_output_config(client: TestClient) -> None:
    system = "Be brief.\n\nRespond with a single JSON object and nothing else."
    for fields in (
        {"system": system},
        {"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
    ):
        text = post(client, body(user(text="Hi"), **fields)).json()["content"][0]["text"]
        assert json.loads(text) == {"images": 0, "asked": "Hi"}


# ---------------------------------------------------------------------------------------------
# Streams


def test_stream_event_sequence(client: TestClient) -> None:
    png = b64(image_bytes("PNG", (64, 48)))
    payload = body(user(image_block("image/png", png), text="What is this?"), stream=True)
    events = sse(post(client, payload))
    names = [name for name, _ in events]
    deltas = names.count("content_block_delta")
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    complete = post(client, {**payload, "stream": False}).json()
    assert start["id"].startswith("msg_")
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == complete["usage"]["input_tokens"]
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text == complete["content"][0]["text"]
    assert deltas == len(text.split())
    final = events[-2][1]
    assert final["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert final["usage"] == {"output_tokens": complete["usage"]["output_tokens"]}


def test_streamed_tool_use(client: TestClient) -> None:
    payload = body(
        user(text="Echo me please"), tools=_tools(), tool_choice={"type": "any"}, stream=True
    )
    events = sse(post(client, payload))
    block = events[1][1]["content_block"]
    assert block["type"] == "tool_use"
    assert block["input"] == {}
    pieces = [d["delta"] for name, d in events if name == "content_block_delta"]
    assert all(p["type"] == "input_json_delta" for p in pieces)
    assert pieces[0]["partial_json"] == ""
    arguments = "".join(p["partial_json"] for p in pieces)
    assert json.loads(arguments) == {"text": "Echo me please"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_stream_cut_to_nothing_has_no_block(client: TestClient) -> None:
    events = sse(post(client, body(user(), stream=True, max_tokens=0)))
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "message_delta",
        "message_stop",
    ]


# ---------------------------------------------------------------------------------------------
# Faults


@pytest.mark.parametrize(
    ("status", "kind", "message"),
    [
        (529, "overloaded_error", "Overloaded"),
        (500, "api_error", "Internal server error"),
        (504, "timeout_error", "Request timed out"),
        (401, "authentication_error", "invalid x-api-key"),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes."),
        (418, "invalid_request_error", "Emulated failure with status 418 (x-emulator-fault)."),
        (503, "api_error", "Emulated failure with status 503 (x-emulator-fault)."),
    ],
)
def test_fault_status(client: TestClient, status: int, kind: str, message: str) -> None:
    response = post(client, body(user()), **{"x-emulator-fault": f"status={status}"})
    assert error_of(response, status) == message
    assert error_type(response) == kind


def test_fault_rate_limit_has_retry_after(client: TestClient) -> None:
    response = post(client, body(user()), **{"x-emulator-fault": "status=429"})
    assert "rate limit" in error_of(response, 429)
    assert error_type(response) == "rate_limit_error"
    assert response.headers["retry-after"] == "1"


def test_fault_quota_is_a_billing_error(client: TestClient) -> None:
    response = post(client, body(user()), **{"x-emulator-fault": "quota"})
    assert "credit balance is too low" in error_of(response, 402)
    assert error_type(response) == "billing_error"


def test_faults_come_before_validation(client: TestClient) -> None:
    response = post(client, {"bad": True}, **{"x-emulator-fault": "status=529"})
    assert response.status_code == 529


def test_fault_delay(client: TestClient) -> None:
    started = time.monotonic()
    response = post(client, body(user()), **{"x-emulator-fault": "delay=60,status=500"})
    assert response.status_code == 500
    assert time.monotonic() - started >= 0.05


def test_bad_fault_header_is_a_loud_400(client: TestClient) -> None:
    response = post(client, body(user()), **{"x-emulator-fault": "explode"})
    assert "Unknown x-emulator-fault directive" in error_of(response)


def test_fault_midstream(client: TestClient) -> None:
    payload = body(user(), stream=True)
    response = post(client, payload, **{"x-emulator-fault": "midstream"})
    assert response.status_code == 200
    events = sse(response)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "error",
    ]
    assert events[-1][1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    # Midstream only concerns streams: a plain request answers normally.
    plain = post(client, body(user()), **{"x-emulator-fault": "midstream"})
    assert plain.status_code == 200


def test_auth_comes_before_faults(client: TestClient) -> None:
    response = client.post(
        URL,
        json=body(user()),
        headers={"anthropic-version": "2023-06-01", "x-emulator-fault": "status=529"},
    )
    assert response.status_code == 401


def test_patch_formula_matches_the_helper() -> None:
    assert math.ceil(64 / 28) * math.ceil(48 / 28) == image_tokens(
        SeenImage("auto", "image/png", 64, 48)
    )
