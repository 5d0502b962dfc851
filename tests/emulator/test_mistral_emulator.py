"""The Mistral emulator over HTTP: validation, image rules, tool call ids, streams, faults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from aperture.emulator import mistral
from aperture.emulator.describe import SeenImage
from aperture.emulator.mistral_request import image_tokens
from tests.sample_images import bmp, data_uri, gif, jpeg, png

URL = "/mistral/v1/chat/completions"
AUTH = {"authorization": "Bearer mis-key"}
JPEG_URI = data_uri(jpeg(64, 48), "image/jpeg")
PNG_URI = data_uri(png(32, 16), "image/png")
ANSWER = 'Saw 1 image: #1 image/jpeg 64x48 detail=auto. Asked: "What is this?"'
TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = Starlette(routes=[Mount("/mistral", routes=mistral.routes())])
    with TestClient(app) as test_client:
        yield test_client


def image(url: str, detail: str | None = None) -> dict[str, Any]:
    spec: str | dict[str, str] = url if detail is None else {"url": url, "detail": detail}
    return {"type": "image_url", "image_url": spec}


def user(*parts: dict[str, Any], text: str = "What is this?") -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}, *parts]}


def chat(*messages: dict[str, Any], model: str = "mistral-medium", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": list(messages), **extra}


def post(client: TestClient, body: Any, **headers: str) -> httpx2.Response:
    return client.post(URL, json=body, headers={**AUTH, **headers})


def error_of(response: httpx2.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"object", "message", "type", "param", "code"}
    assert body["object"] == "error"
    return body


def chunks(response: httpx2.Response) -> list[Any]:
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [block for block in response.text.split("\n\n") if block]
    assert all(block.startswith("data: ") for block in blocks)
    data = [block.removeprefix("data: ") for block in blocks]
    return [d if d == "[DONE]" else json.loads(d) for d in data]


def test_answer_string_image_url_and_usage(client: TestClient) -> None:
    response = post(client, chat(user(image(JPEG_URI))))
    assert response.status_code == 200
    body = response.json()
    (choice,) = body["choices"]
    assert choice["message"]["content"] == ANSWER
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == len(ANSWER.split())
    assert body["usage"]["prompt_tokens"] == 4 + 3 * 2, "13 characters and 3x2 28-px patches"


def test_object_image_url_url_and_history(client: TestClient) -> None:
    body = chat(
        {"role": "system", "content": "Be brief."},
        user(image(PNG_URI, "high")),
        {"role": "assistant", "content": "A square."},
        user(image(JPEG_URI), image("https://img.test/a.png")),
    )
    content = post(client, body).json()["choices"][0]["message"]["content"]
    assert content == (
        "Saw 3 images: #1 image/png 32x16 detail=high, #2 image/jpeg 64x48 detail=auto, "
        '#3 url image from img.test detail=auto. Asked: "What is this?" System: "Be brief."'
    )


def test_image_token_estimates() -> None:
    assert image_tokens(SeenImage("auto", "image/png", 1540, 1540), "mistral-medium") == 3025
    assert image_tokens(SeenImage("auto", "image/png", 2048, 2048), "pixtral-12b") == 4096


def test_more_than_eight_images_are_refused(client: TestClient) -> None:
    response = post(client, chat(user(*[image(PNG_URI)] * 9)))
    assert response.status_code == 400
    assert error_of(response)["message"] == "Too many images in request. Max is 8."
    assert post(client, chat(user(*[image(PNG_URI)] * 8))).status_code == 200


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (data_uri(gif(frames=3), "image/gif"), "Animated GIFs are not supported"),
        (data_uri(bmp(), "image/bmp"), "Image format not supported"),
        (data_uri(png(), "image/jpeg"), "Image could not be processed"),
    ],
)
def test_image_format_rules(client: TestClient, uri: str, message: str) -> None:
    response = post(client, chat(user(image(uri))))
    assert response.status_code == 400
    assert error_of(response)["message"].startswith(message)


def test_single_frame_gif_is_fine_and_text_models_refuse_images(client: TestClient) -> None:
    assert post(client, chat(user(image(data_uri(gif(), "image/gif"))))).status_code == 200
    response = post(client, chat(user(image(PNG_URI)), model="mistral-small-text"))
    assert response.status_code == 400
    assert "does not support image input" in error_of(response)["message"]


def test_tool_call_ids_must_be_nine_alphanumerics(client: TestClient) -> None:
    call = {"id": "call_0fypS1hVX", "function": {"name": "weather", "arguments": "{}"}}
    history = [
        user(text="Paris?"),
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "18C", "tool_call_id": "call_0fypS1hVX"},
    ]
    response = post(client, chat(*history, tools=TOOLS))
    assert response.status_code == 400
    error = error_of(response)
    assert error["message"] == (
        "Tool call id was call_0fypS1hVX but must be a-z, A-Z, 0-9, with a length of 9."
    )
    assert (error["type"], error["code"]) == ("invalid_function_call", "3280")
    call["id"] = history[2]["tool_call_id"] = "0fypS1hVX"
    assert post(client, chat(*history, tools=TOOLS)).status_code == 200


def test_unknown_fields_are_a_422(client: TestClient) -> None:
    response = post(client, chat(user(), seed=1))
    assert response.status_code == 422
    (detail,) = error_of(response)["message"]["detail"]
    assert detail["type"] == "extra_forbidden" and detail["loc"] == ["body", "seed"]
    missing = post(client, {"messages": [user()]})
    assert missing.json()["message"]["detail"][0]["loc"] == ["body", "model"]


def test_auth_is_required(client: TestClient) -> None:
    response = client.post(URL, json=chat(user()))
    assert response.status_code == 401
    assert response.json()["message"] == "Unauthorized"


def test_stream_has_usage_on_the_last_chunk(client: TestClient) -> None:
    got = chunks(post(client, chat(user(image(JPEG_URI)), stream=True)))
    assert got[-1] == "[DONE]"
    assert got[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in got[:-1])
    assert text == ANSWER
    last = got[-2]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["usage"]["completion_tokens"] == len(ANSWER.split())


def test_forced_tool_call_and_stream(client: TestClient) -> None:
    body = post(client, chat(user(text="Paris?"), tools=TOOLS, tool_choice="any")).json()
    (call,) = body["choices"][0]["message"]["tool_calls"]
    assert len(call["id"]) == 9 and call["id"].isalnum()
    assert call["function"] == {"name": "weather", "arguments": '{"text":"Paris?"}'}
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    got = chunks(
        post(client, chat(user(text="Paris?"), tools=TOOLS, tool_choice="any", stream=True))
    )
    assert got[1]["choices"][0]["delta"]["tool_calls"] == [call]


def test_max_tokens_and_json(client: TestClient) -> None:
    cut = post(client, chat(user(), max_tokens=2)).json()["choices"][0]
    assert (cut["message"]["content"], cut["finish_reason"]) == ("Saw no", "length")
    fmt = {"type": "json_object"}
    answer = post(client, chat(user(text="JSON"), response_format=fmt)).json()
    assert json.loads(answer["choices"][0]["message"]["content"]) == {"images": 0, "asked": "JSON"}


@pytest.mark.parametrize(
    ("fault", "status", "kind"),
    [
        ("status=429", 429, "rate_limited"),
        ("quota", 402, "billing_customer_monthly_spending_limit_reached"),
        ("quota=api_budget", 402, "billing_api_budget_exhausted"),
        ("status=503", 503, "service_unavailable"),
        ("status=404", 404, "invalid_model"),
    ],
)
def test_scripted_faults(client: TestClient, fault: str, status: int, kind: str) -> None:
    response = post(client, chat(user()), **{"x-emulator-fault": fault})
    assert response.status_code == status
    assert error_of(response)["type"] == kind
    if fault == "status=429":
        assert response.headers["retry-after"] == "1"


def test_midstream_fault(client: TestClient) -> None:
    got = chunks(post(client, chat(user(), stream=True), **{"x-emulator-fault": "midstream"}))
    assert got[-1]["object"] == "error" and got[-1]["code"] == "1000"
    assert len(got) == 1 + mistral.MIDSTREAM_CHUNKS + 1
