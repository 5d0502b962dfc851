"""The Ollama emulator over HTTP: Go-style validation, answers, NDJSON streams, faults."""

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

from aperture.emulator import ollama
from aperture.emulator.describe import Seen, describe_json
from tests.sample_images import gif, jpeg, png

URL = "/ollama/api/chat"
JPEG_B64 = base64.b64encode(jpeg(64, 48)).decode()
PNG_B64 = base64.b64encode(png(32, 16)).decode()
ANSWER = 'Saw 1 image: #1 image/jpeg 64x48 detail=auto. Asked: "What is this?"'


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = Starlette(routes=[Mount("/ollama", routes=ollama.routes())])
    with TestClient(app) as test_client:
        yield test_client


def chat(*messages: dict[str, Any], model: str = "emulator-vision", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": list(messages), **extra}


def user(text: str = "What is this?", *images: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "user", "content": text}
    if images:
        message["images"] = list(images)
    return message


def post(client: TestClient, body: Any, **headers: str) -> httpx2.Response:
    return client.post(URL, json=body, headers=headers)


def lines(response: httpx2.Response) -> list[dict[str, Any]]:
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.text.endswith("\n")
    return [json.loads(line) for line in response.text.splitlines()]


def error_of(response: httpx2.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}
    message: str = body["error"]
    return message


def test_answer_usage_and_shape(client: TestClient) -> None:
    response = post(client, chat(user("What is this?", JPEG_B64), stream=False))
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == {"role": "assistant", "content": ANSWER}
    assert body["done"] is True and body["done_reason"] == "stop"
    assert body["model"] == "emulator-vision" and body["created_at"].endswith("Z")
    assert body["eval_count"] == len(ANSWER.split())
    assert body["prompt_eval_count"] > 85, "the image is counted"


def test_streams_by_default_as_ndjson(client: TestClient) -> None:
    response = post(client, chat(user("What is this?", JPEG_B64)))
    objects = lines(response)
    assert all(not o["done"] for o in objects[:-1])
    assert "".join(o["message"]["content"] for o in objects) == ANSWER
    last = objects[-1]
    assert last["done"] is True and last["done_reason"] == "stop"
    assert last["eval_count"] == len(ANSWER.split())


def test_several_images_and_history(client: TestClient) -> None:
    body = chat(
        {"role": "system", "content": "Be brief."},
        user("First?", PNG_B64),
        {"role": "assistant", "content": "A square."},
        user("What is this?", JPEG_B64, PNG_B64),
        stream=False,
    )
    content = post(client, body).json()["message"]["content"]
    assert content == (
        "Saw 3 images: #1 image/png 32x16 detail=auto, #2 image/jpeg 64x48 detail=auto, "
        '#3 image/png 32x16 detail=auto. Asked: "What is this?" System: "Be brief."'
    )


def test_data_uri_prefix_is_refused_like_ollama(client: TestClient) -> None:
    response = post(client, chat(user("x", f"data:image/jpeg;base64,{JPEG_B64}")))
    assert response.status_code == 400
    assert error_of(response) == "illegal base64 data at input byte 4"


def test_content_must_be_a_string(client: TestClient) -> None:
    parts = [{"type": "text", "text": "hi"}]
    response = post(client, chat({"role": "user", "content": parts}))
    assert response.status_code == 400
    assert error_of(response) == (
        "json: cannot unmarshal array into Go struct field ChatRequest.messages.content "
        "of type string"
    )


def test_model_is_required_and_json_must_parse(client: TestClient) -> None:
    assert error_of(post(client, {"messages": [user()]})) == "model is required"
    response = client.post(URL, content=b"{nope")
    assert response.status_code == 400
    assert "invalid character" in error_of(response)


def test_text_model_refuses_images(client: TestClient) -> None:
    response = post(client, chat(user("x", PNG_B64), model="emulator-text"))
    assert response.status_code == 400
    assert error_of(response) == '"emulator-text" does not support vision'


def test_unsupported_image_format(client: TestClient) -> None:
    response = post(client, chat(user("x", base64.b64encode(gif()).decode())))
    assert response.status_code == 500
    assert error_of(response) == "failed to process inputs: image: unknown format"


def test_num_predict_cuts_with_length(client: TestClient) -> None:
    body = post(client, chat(user(), stream=False, options={"num_predict": 3})).json()
    assert body["message"]["content"] == "Saw no images."
    assert body["done_reason"] == "length" and body["eval_count"] == 3
    bad = post(client, chat(user(), options={"num_predict": "3"}))
    assert error_of(bad) == 'option "num_predict" must be of type integer'


def test_json_format(client: TestClient) -> None:
    body = post(client, chat(user("Reply in JSON"), stream=False, format="json")).json()
    assert json.loads(body["message"]["content"]) == {"images": 0, "asked": "Reply in JSON"}
    seen = Seen(images=(), asked="Reply in JSON", system=None, text_chars=13)
    assert body["message"]["content"] == describe_json(seen)


TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


def test_tool_call_when_the_user_spoke_last(client: TestClient) -> None:
    body = post(client, chat(user("Paris?"), stream=False, tools=TOOLS)).json()
    assert body["message"]["tool_calls"] == [
        {"function": {"name": "weather", "arguments": {"text": "Paris?"}}}
    ]
    objects = lines(post(client, chat(user("Paris?"), tools=TOOLS)))
    assert objects[0]["message"]["tool_calls"][0]["function"]["name"] == "weather"
    assert objects[-1]["done"] is True


def test_answer_after_a_tool_result_and_arguments_must_be_objects(client: TestClient) -> None:
    call = {"function": {"name": "weather", "arguments": {"city": "Paris"}}}
    history = [
        user("Paris?"),
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "18C", "tool_name": "weather"},
    ]
    body = post(client, chat(*history, stream=False, tools=TOOLS)).json()
    assert "tool_calls" not in body["message"]
    history[1]["tool_calls"] = [{"function": {"name": "weather", "arguments": '{"city":"P"}'}}]
    response = post(client, chat(*history, tools=TOOLS))
    assert response.status_code == 400
    assert "cannot unmarshal string" in error_of(response)


@pytest.mark.parametrize(
    ("fault", "status"),
    [("status=503", 503), ("status=500", 500), ("status=404", 404), ("quota", 402)],
)
def test_scripted_faults(client: TestClient, fault: str, status: int) -> None:
    response = post(client, chat(user()), **{"x-emulator-fault": fault})
    assert response.status_code == status
    assert error_of(response)


def test_rate_limit_fault_has_retry_after(client: TestClient) -> None:
    response = post(client, chat(user()), **{"x-emulator-fault": "status=429,delay=5"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"


def test_bad_fault_header(client: TestClient) -> None:
    response = post(client, chat(user()), **{"x-emulator-fault": "explode"})
    assert response.status_code == 400
    assert "explode" in error_of(response)


def test_midstream_fault_sends_an_error_line(client: TestClient) -> None:
    response = post(client, chat(user()), **{"x-emulator-fault": "midstream"})
    assert response.status_code == 200
    objects = lines(response)
    assert len(objects) == ollama.MIDSTREAM_LINES + 1
    assert objects[-1] == {"error": ollama.MIDSTREAM_ERROR}


def test_tags_lists_the_models(client: TestClient) -> None:
    names = [m["name"] for m in client.get("/ollama/api/tags").json()["models"]]
    assert names == ["emulator-vision:latest", "emulator-text:latest"]
