"""The Cohere emulator over HTTP: v2 validation, answers, typed-event streams, faults."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from aperture.emulator import cohere
from aperture.emulator.cohere_request import image_tokens
from aperture.emulator.describe import SeenImage
from tests.sample_images import bmp, data_uri, gif, jpeg, png

URL = "/cohere/v2/chat"
AUTH = {"authorization": "Bearer co-key"}
JPEG_URI = data_uri(jpeg(64, 48), "image/jpeg")
PNG_URI = data_uri(png(32, 16), "image/png")
ANSWER = 'Saw 1 image: #1 image/jpeg 64x48 detail=auto. Asked: "What is this?"'
TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(Starlette(routes=[Mount("/cohere", routes=cohere.routes())])) as test_client:
        yield test_client


def image(url: str, detail: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": url}
    if detail:
        spec["detail"] = detail
    return {"type": "image_url", "image_url": spec}


def user(*parts: dict[str, Any], text: str = "What is this?") -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}, *parts]}


def chat(
    *messages: dict[str, Any], model: str = "command-a-vision", **extra: Any
) -> dict[str, Any]:
    return {"model": model, "messages": list(messages), **extra}


def post(client: TestClient, body: Any, **headers: str) -> httpx2.Response:
    return client.post(URL, json=body, headers={**AUTH, **headers})


def error_of(response: httpx2.Response) -> str:
    body = response.json()
    assert set(body) == {"id", "message"}
    message: str = body["message"]
    return message


def events(response: httpx2.Response) -> list[tuple[str, Any]]:
    assert response.headers["content-type"].startswith("text/event-stream")
    out: list[tuple[str, Any]] = []
    for block in response.text.split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        data = fields["data"]
        out.append((fields.get("event", ""), data if data == "[DONE]" else json.loads(data)))
    return out


def test_answer_and_usage(client: TestClient) -> None:
    response = post(client, chat(user(image(JPEG_URI))))
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == {"role": "assistant", "content": [{"type": "text", "text": ANSWER}]}
    assert body["finish_reason"] == "COMPLETE"
    billed = body["usage"]["billed_units"]
    assert billed["output_tokens"] == len(ANSWER.split())
    assert billed["input_tokens"] == 4 + 256, "13 characters of text and one low-detail tile"
    assert body["usage"]["tokens"]["input_tokens"] == billed["input_tokens"] + 200


def test_image_token_formula() -> None:
    assert image_tokens(SeenImage("auto", "image/png", 700, 700)) == 256
    assert image_tokens(SeenImage("high", "image/png", 1024, 1024)) == 256 * 5
    assert image_tokens(SeenImage("auto", "image/png", 10000, 20000)) == 2304


def test_stream_event_order(client: TestClient) -> None:
    got = events(post(client, chat(user(image(JPEG_URI)), stream=True)))
    kinds = [kind for kind, _ in got]
    assert kinds[:2] == ["message-start", "content-start"]
    assert kinds[-3:] == ["content-end", "message-end", ""]
    assert got[-1][1] == "[DONE]"
    assert all(data["type"] == kind for kind, data in got[:-1])
    text = "".join(d["delta"]["message"]["content"]["text"] for k, d in got if k == "content-delta")
    assert text == ANSWER
    assert got[-2][1]["delta"]["finish_reason"] == "COMPLETE"


def test_several_images_history_and_system(client: TestClient) -> None:
    body = chat(
        {"role": "system", "content": "Be brief."},
        user(image(PNG_URI, "high")),
        {"role": "assistant", "content": "A square."},
        user(image(JPEG_URI), image("https://example.com/a.png", "low")),
    )
    text = post(client, body).json()["message"]["content"][0]["text"]
    assert text == (
        "Saw 3 images: #1 image/png 32x16 detail=high, #2 image/jpeg 64x48 detail=auto, "
        '#3 url image from example.com detail=low. Asked: "What is this?" System: "Be brief."'
    )


@pytest.mark.parametrize(
    ("part", "message"),
    [
        (
            {"type": "image_url", "image_url": JPEG_URI},
            "invalid request: messages[0].content[1].image_url must be an object with a url",
        ),
        (image(data_uri(bmp(), "image/bmp")), "invalid request: unsupported image type image/bmp"),
        (image(data_uri(gif(frames=3), "image/gif")), "invalid request: animated GIFs"),
        (image(PNG_URI, "ultra"), "invalid request: messages[0].content[1].image_url.detail"),
    ],
)
def test_image_validation(client: TestClient, part: dict[str, Any], message: str) -> None:
    response = post(client, chat(user(part)))
    assert response.status_code == 400
    assert error_of(response).startswith(message)


def test_limits_and_text_models(client: TestClient) -> None:
    many = post(client, chat(user(*[image(PNG_URI)] * 21)))
    assert error_of(many) == "invalid request: too many images, the maximum is 20 per request"
    text_model = post(client, chat(user(image(PNG_URI)), model="command-a-text"))
    assert error_of(text_model) == (
        "invalid request: model 'command-a-text' does not support image inputs"
    )


def test_unknown_fields_and_parameter_ranges(client: TestClient) -> None:
    unknown = post(client, chat(user(), stream_options={"include_usage": True}))
    assert error_of(unknown) == (
        "invalid request: unknown field: parameter stream_options is not a valid field"
    )
    assert error_of(post(client, chat(user(), p=1.0))) == (
        "invalid request: p must be between 0.01 and 0.99"
    )
    assert "messages cannot be empty" in error_of(post(client, chat()))


def test_auth_is_required(client: TestClient) -> None:
    response = client.post(URL, json=chat(user()))
    assert response.status_code == 401
    assert error_of(response) == "no api key supplied"


def test_max_tokens_and_json(client: TestClient) -> None:
    cut = post(client, chat(user(), max_tokens=2)).json()
    assert cut["finish_reason"] == "MAX_TOKENS"
    assert cut["message"]["content"][0]["text"] == "Saw no"
    asked = user(text="Reply in JSON")
    fmt = {"type": "json_object"}
    body = post(client, chat(asked, response_format=fmt)).json()
    assert json.loads(body["message"]["content"][0]["text"]) == {
        "images": 0,
        "asked": "Reply in JSON",
    }


def test_required_tool_call_and_tool_result_checks(client: TestClient) -> None:
    body = post(client, chat(user(text="Paris?"), tools=TOOLS, tool_choice="REQUIRED")).json()
    assert body["finish_reason"] == "TOOL_CALL"
    (call,) = body["message"]["tool_calls"]
    assert call["function"] == {"name": "weather", "arguments": '{"text":"Paris?"}'}
    assert body["message"]["tool_plan"]
    history = [
        user(text="Paris?"),
        {"role": "assistant", "tool_plan": "Checking.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "18C"},
    ]
    assert post(client, chat(*history, tools=TOOLS)).status_code == 200
    history[2]["tool_call_id"] = "nope"
    assert "tool call id 'nope' not found" in error_of(post(client, chat(*history, tools=TOOLS)))


def test_tool_call_stream(client: TestClient) -> None:
    body = chat(user(text="Paris?"), tools=TOOLS, tool_choice="REQUIRED", stream=True)
    got = events(post(client, body))
    kinds = [kind for kind, _ in got]
    assert "tool-plan-delta" in kinds and "tool-call-start" in kinds and "tool-call-end" in kinds
    deltas = [
        d["delta"]["message"]["tool_calls"]["function"]["arguments"]
        for k, d in got
        if k == "tool-call-delta"
    ]
    assert json.loads("".join(deltas)) == {"text": "Paris?"}
    assert got[-2][1]["delta"]["finish_reason"] == "TOOL_CALL"


@pytest.mark.parametrize(
    ("fault", "status"),
    [("status=429", 429), ("status=503", 503), ("status=422", 422), ("quota", 402)],
)
def test_scripted_faults(client: TestClient, fault: str, status: int) -> None:
    response = post(client, chat(user()), **{"x-emulator-fault": fault})
    assert response.status_code == status
    assert error_of(response)


def test_midstream_fault_ends_with_an_error(client: TestClient) -> None:
    response = post(client, chat(user(), stream=True), **{"x-emulator-fault": "midstream"})
    got = events(response)
    assert [k for k, _ in got].count("content-delta") == cohere.MIDSTREAM_DELTAS
    kind, last = got[-1]
    assert kind == "message-end"
    assert last["delta"] == {"finish_reason": "ERROR", "error": cohere.MIDSTREAM_ERROR}


def test_bad_fault_header(client: TestClient) -> None:
    response = post(client, chat(user()), **{"x-emulator-fault": "status=abc"})
    assert response.status_code == 400


def test_base64_images_are_checked(client: TestClient) -> None:
    lying = "data:image/png;base64," + base64.b64encode(jpeg()).decode()
    response = post(client, chat(user(image(lying))))
    assert response.status_code == 400
    assert "declared as image/png" in error_of(response)
