"""The OpenAI emulator over HTTP: validation, answers, usage, streams and scripted faults."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from PIL import Image
from starlette.testclient import TestClient

from aperture.emulator import create_emulator_app
from aperture.emulator.openai import build_reply
from aperture.emulator.openai_errors import OpenAIError
from aperture.emulator.openai_request import parse_chat_request

URL = "/openai/v1/chat/completions"
AUTH = {"authorization": "Bearer test-key"}
UNSUPPORTED = (
    "You uploaded an unsupported image. Please make sure your image is below 20 MB in size and "
    "is of one the following formats: ['png', 'jpeg', 'gif', 'webp']."
)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_emulator_app()) as test_client:
        yield test_client


def image_bytes(fmt: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, fmt)
    return buffer.getvalue()


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_part(url: str, detail: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": url}
    if detail is not None:
        spec["detail"] = detail
    return {"type": "image_url", "image_url": spec}


def user(*parts: dict[str, Any], text: str = "Describe this image.") -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}, *parts]}


def chat(*messages: dict[str, Any], model: str = "emulator-vision", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": list(messages), **extra}


def post(client: TestClient, body: Any, url: str = URL, **headers: str) -> httpx2.Response:
    return client.post(url, json=body, headers={**AUTH, **headers})


def error_of(response: httpx2.Response) -> dict[str, Any]:
    body: dict[str, dict[str, Any]] = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def sse_events(text: str) -> list[str]:
    assert all(block.startswith("data: ") for block in text.split("\n\n") if block)
    return [block.removeprefix("data: ") for block in text.split("\n\n") if block]


def test_healthz_and_models(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    models = client.get("/openai/v1/models", headers=AUTH).json()
    assert models["object"] == "list"
    assert [model["id"] for model in models["data"]] == ["emulator-vision", "emulator-text"]
    assert models["data"][0] == {
        "id": "emulator-vision",
        "object": "model",
        "created": 0,
        "owned_by": "emulator",
    }


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": "Bearer "}, {"authorization": "Basic x"}]
)
def test_missing_api_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(URL, json=chat(user()), headers=headers)
    assert response.status_code == 401
    error = error_of(response)
    assert error["message"].startswith("You didn't provide an API key.")
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        None,
        "invalid_api_key",
    )


def test_unknown_url_uses_the_envelope(client: TestClient) -> None:
    response = client.get("/openai/v1/chat/completions", headers=AUTH)
    assert response.status_code == 404
    assert error_of(response)["message"] == "Invalid URL (GET /v1/chat/completions)"


def test_malformed_json_is_400_with_null_code(client: TestClient) -> None:
    response = client.post(URL, content=b'{"model": ', headers=AUTH)
    assert response.status_code == 400
    error = error_of(response)
    assert error["message"].startswith("We could not parse the JSON body of your request.")
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", None, None)
    assert error_of(post(client, [1, 2]))["code"] == "invalid_type"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model", "missing_required_parameter"),
        ({"model": "m"}, "messages", "missing_required_parameter"),
        ({"model": "m", "messages": []}, "messages", "empty_array"),
        ({"model": 3, "messages": [{"role": "user", "content": "hi"}]}, "model", "invalid_type"),
        ({"model": "m", "messages": [{"content": "hi"}]}, "messages[0].role", None),
        ({"model": "m", "messages": [{"role": "bot", "content": "hi"}]}, "messages[0].role", None),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content", None),
        (
            {"model": "m", "messages": [{"role": "tool", "content": "x"}]},
            "messages[0].tool_call_id",
            None,
        ),
    ],
)
def test_missing_and_invalid_fields_name_the_param(
    client: TestClient, body: dict[str, Any], param: str, code: str | None
) -> None:
    response = post(client, body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    if code == "missing_required_parameter":
        assert error["message"] == f"Missing required parameter: '{param}'."


def test_missing_model_has_openai_wording(client: TestClient) -> None:
    error = error_of(post(client, {"messages": [{"role": "user", "content": "hi"}]}))
    assert error == {
        "message": "Missing required parameter: 'model'.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "missing_required_parameter",
    }


def test_invalid_part_type_is_invalid_value(client: TestClient) -> None:
    body = chat(user({"type": "video", "video": {}}))
    error = error_of(post(client, body))
    assert (error["param"], error["code"]) == ("messages[0].content[1].type", "invalid_value")
    assert error["message"].startswith("Invalid value: 'video'. Supported values are: 'text'")


def test_invalid_detail_and_image_in_system_message(client: TestClient) -> None:
    png = data_uri("image/png", image_bytes("PNG", (4, 4)))
    error = error_of(post(client, chat(user(image_part(png, "ultra")))))
    assert (error["param"], error["code"]) == (
        "messages[0].content[1].image_url.detail",
        "invalid_value",
    )
    system = {"role": "system", "content": [image_part(png)]}
    error = error_of(post(client, chat(system, user())))
    assert error["param"] == "messages[0]"
    assert "only allowed for messages with role 'user'" in error["message"]


def test_assistant_tool_call_message_may_have_null_content(client: TestClient) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "user", "content": "second"},
    ]
    response = post(client, chat(*messages))
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == 'Saw no images. Asked: "second"'
    messages[1] = {"role": "assistant", "content": None}
    error = error_of(post(client, chat(*messages)))
    assert error["message"] == "Invalid value for 'content': expected a string, got null."


def test_describes_real_png_and_jpeg_images(client: TestClient) -> None:
    jpeg = data_uri("image/jpeg", image_bytes("JPEG", (640, 480)))
    png = data_uri("image/png", image_bytes("PNG", (10, 10)))
    system = {"role": "developer", "content": "Be brief."}
    body = chat(system, user(image_part(jpeg), image_part(png, "low")), metadata={"a": "b"})
    body["x_custom"] = 1
    body["another"] = True
    # OpenAI would refuse the unknown fields; an OpenAI-compatible server ignores them.
    response = post(client, body, url="/vllm/v1/chat/completions")
    assert response.status_code == 200
    completion = response.json()
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": (
                    "Saw 2 images: #1 image/jpeg 640x480 detail=auto, #2 image/png 10x10 "
                    'detail=low. Asked: "Describe this image." System: "Be brief."'
                ),
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert completion["object"] == "chat.completion"
    assert completion["model"] == "emulator-vision"
    assert completion["id"].startswith("chatcmpl-")
    assert isinstance(completion["created"], int)
    assert completion["system_fingerprint"] == "fp_emulator"
    # 425 (640x480 auto) + 85 (low) image tokens; 29 characters of text -> 8 tokens.
    assert completion["usage"] == {
        "prompt_tokens": 8 + 510,
        "completion_tokens": 18,
        "total_tokens": 536,
        "prompt_tokens_details": {"cached_tokens": 0, "image_tokens": 510},
    }
    assert json.loads(response.headers["x-emulator-received"]) == {
        "images": 2,
        "mimes": ["image/jpeg", "image/png"],
        "sizes": ["640x480", "10x10"],
        "extra_fields": ["another", "x_custom"],
    }


def test_same_request_same_answer(client: TestClient) -> None:
    body = chat(user())
    first, second = post(client, body).json(), post(client, body).json()
    assert first["id"] == second["id"]
    assert first["choices"] == second["choices"]


def test_worked_example_usage_through_the_wire(client: TestClient) -> None:
    big = data_uri("image/png", image_bytes("PNG", (1024, 1024)))
    tall = data_uri("image/png", image_bytes("PNG", (2048, 4096)))
    body = chat(
        user(image_part(big, "high"), image_part(tall, "high"), image_part(big, "low"), text="")
    )
    usage = post(client, body).json()["usage"]
    assert usage["prompt_tokens_details"]["image_tokens"] == 765 + 1105 + 85
    assert usage["prompt_tokens"] == 765 + 1105 + 85


def test_url_image_is_described_not_fetched(client: TestClient) -> None:
    response = post(client, chat(user(image_part("https://example.com/cat.png?x=1"))))
    content = response.json()["choices"][0]["message"]["content"]
    assert content.startswith("Saw 1 image: #1 url image from example.com detail=auto.")
    assert response.json()["usage"]["prompt_tokens_details"]["image_tokens"] == 85
    received = json.loads(response.headers["x-emulator-received"])
    assert (received["mimes"], received["sizes"]) == (["url"], ["unknown"])


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "file:///etc/passwd", "nonsense"])
def test_other_url_schemes_are_invalid_image_url(client: TestClient, url: str) -> None:
    error = error_of(post(client, chat(user(image_part(url)))))
    assert (error["code"], error["param"]) == (
        "invalid_image_url",
        "messages[0].content[1].image_url.url",
    )


def test_text_only_model_rejects_images_with_openai_wording(client: TestClient) -> None:
    png = data_uri("image/png", image_bytes("PNG", (4, 4)))
    response = post(client, chat(user(image_part(png)), model="emulator-text"))
    assert response.status_code == 400
    assert error_of(response) == {
        "message": "Invalid content type. image_url is only supported by certain models.",
        "type": "invalid_request_error",
        "param": "messages.[0].content.[1].type",
        "code": None,
    }
    assert post(client, chat(user(), model="demo-text")).status_code == 200


def test_mismatched_declared_mime_is_rejected(client: TestClient) -> None:
    wrong = data_uri("image/png", image_bytes("JPEG", (8, 8)))
    error = error_of(post(client, chat(user(image_part(wrong)))))
    assert error["code"] == "invalid_image_format"
    assert "image/png" in error["message"]
    assert "image/jpeg" in error["message"]


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64,iVBORw0KGgo=!!",
        "data:image/png;base64,iVBORw0K Ggo=",
        "data:image/png;base64,aGVsbG8gd29ybGQ=",
        "data:image/bmp;base64," + base64.b64encode(image_bytes("BMP", (4, 4))).decode(),
        "data:image/jpg;base64," + base64.b64encode(image_bytes("JPEG", (4, 4))).decode(),
    ],
    ids=["bad-base64", "whitespace", "not-an-image", "bmp", "jpg-alias"],
)
def test_undecodable_or_unsupported_images(client: TestClient, url: str) -> None:
    response = post(client, chat(user(image_part(url))))
    assert response.status_code == 400
    assert error_of(response) == {
        "message": UNSUPPORTED,
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_image_format",
    }


def test_data_uri_without_image_mime_or_base64_is_invalid_url(client: TestClient) -> None:
    for url in ("data:text/plain;base64,aGk=", "data:image/png,rawbytes"):
        assert error_of(post(client, chat(user(image_part(url)))))["code"] == "invalid_image_url"


def test_animated_gif_is_rejected_but_still_gif_accepted(client: TestClient) -> None:
    frames = [Image.new("RGB", (6, 6), color) for color in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    animated = data_uri("image/gif", buffer.getvalue())
    assert error_of(post(client, chat(user(image_part(animated)))))["message"] == UNSUPPORTED
    still = data_uri("image/gif", image_bytes("GIF", (6, 6)))
    content = post(client, chat(user(image_part(still)))).json()["choices"][0]["message"]["content"]
    assert "#1 image/gif 6x6 detail=auto" in content


def test_webp_is_accepted(client: TestClient) -> None:
    webp = data_uri("image/webp", image_bytes("WEBP", (30, 20)))
    content = post(client, chat(user(image_part(webp)))).json()["choices"][0]["message"]["content"]
    assert "#1 image/webp 30x20 detail=auto" in content


def test_over_20_mb_is_image_too_large(client: TestClient) -> None:
    huge = data_uri("image/png", b"\x00" * (20 * 1024 * 1024 + 1))
    response = post(client, chat(user(image_part(huge))))
    assert response.status_code == 400
    assert error_of(response)["code"] == "image_too_large"


def test_asked_is_the_last_user_message(client: TestClient) -> None:
    messages = [
        {"role": "user", "content": "old question"},
        {"role": "assistant", "content": "old answer"},
        user({"type": "text", "text": "part two"}, text="part one"),
    ]
    content = post(client, chat(*messages)).json()["choices"][0]["message"]["content"]
    assert content == 'Saw no images. Asked: "part one part two"'


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_cuts_words_and_finishes_with_length(client: TestClient, field: str) -> None:
    completion = post(client, {**chat(user(text="hi")), field: 3}).json()
    choice = completion["choices"][0]
    assert choice["message"]["content"] == "Saw no images."
    assert choice["finish_reason"] == "length"
    assert completion["usage"]["completion_tokens"] == 3
    roomy = post(client, {**chat(user(text="hi")), field: 100}).json()
    assert roomy["choices"][0]["finish_reason"] == "stop"
    error = error_of(post(client, {**chat(user()), field: 0}))
    assert (error["param"], error["code"]) == (field, "integer_below_min_value")


def _tools() -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": "get_weather", "parameters": {}}},
        {"type": "function", "function": {"name": "lookup"}},
    ]


@pytest.mark.parametrize(
    ("choice", "name"),
    [("required", "get_weather"), ({"type": "function", "function": {"name": "lookup"}}, "lookup")],
)
def test_forced_tool_choice_answers_with_a_tool_call(
    client: TestClient, choice: Any, name: str
) -> None:
    asked = "What is the weather?"
    body = chat(user(text=asked), tools=_tools(), tool_choice=choice)
    completion = post(client, body).json()
    choice_json = completion["choices"][0]
    call_id = "call_" + hashlib.sha256(asked.encode()).hexdigest()[:24]
    assert choice_json["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": '{"text":"What is the weather?"}'},
            }
        ],
    }
    assert choice_json["finish_reason"] == "tool_calls"
    assert completion["usage"]["completion_tokens"] == 10


def test_auto_tool_choice_answers_with_text(client: TestClient) -> None:
    completion = post(client, chat(user(), tools=_tools(), tool_choice="auto")).json()
    assert completion["choices"][0]["finish_reason"] == "stop"


def test_tool_choice_errors(client: TestClient) -> None:
    assert error_of(post(client, chat(user(), tool_choice="required")))["param"] == "tool_choice"
    named = {"type": "function", "function": {"name": "nope"}}
    assert error_of(post(client, chat(user(), tools=_tools(), tool_choice=named)))["param"] == (
        "tool_choice"
    )


def test_json_mode_answers_with_a_json_object(client: TestClient) -> None:
    png = data_uri("image/png", image_bytes("PNG", (4, 4)))
    body = chat(
        user(image_part(png), text="Answer in JSON."), response_format={"type": "json_object"}
    )
    content = post(client, body).json()["choices"][0]["message"]["content"]
    assert content == '{"images":1,"asked":"Answer in JSON."}'
    assert json.loads(content) == {"images": 1, "asked": "Answer in JSON."}
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    content = post(client, chat(user(text="hi"), response_format=schema)).json()
    assert content["choices"][0]["message"]["content"] == '{"images":0,"asked":"hi"}'


def test_json_object_mode_requires_the_word_json(client: TestClient) -> None:
    error = error_of(post(client, chat(user(text="hi"), response_format={"type": "json_object"})))
    assert error["param"] == "messages"
    assert "must contain the word 'json'" in error["message"]


def test_streaming_concatenation_equals_the_completion(client: TestClient) -> None:
    png = data_uri("image/png", image_bytes("PNG", (10, 10)))
    body = chat(user(image_part(png, "low")))
    expected = post(client, body).json()["choices"][0]["message"]["content"]
    response = post(client, {**body, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert json.loads(response.headers["x-emulator-received"])["sizes"] == ["10x10"]
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert text == expected
    assert len(chunks) == 2 + len(expected.split())


def test_include_usage_adds_a_usage_chunk(client: TestClient) -> None:
    body = chat(user(text="hi"), stream=True, stream_options={"include_usage": True}, max_tokens=2)
    chunks = [json.loads(event) for event in sse_events(post(client, body).text)[:-1]]
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 0, "image_tokens": 0},
    }


def test_stream_options_require_stream(client: TestClient) -> None:
    error = error_of(post(client, chat(user(), stream_options={"include_usage": True})))
    assert error["param"] == "stream_options"


def test_streamed_tool_call(client: TestClient) -> None:
    body = chat(user(text="Weather in Paris?"), tools=_tools(), tool_choice="required", stream=True)
    chunks = [json.loads(event) for event in sse_events(post(client, body).text)[:-1]]
    head = chunks[0]["choices"][0]["delta"]
    assert head["role"] == "assistant"
    assert head["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    assert head["tool_calls"][0]["index"] == 0
    arguments = "".join(
        chunk["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
        for chunk in chunks[1:-1]
    )
    assert json.loads(arguments) == {"text": "Weather in Paris?"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, "server_error"),
        (502, "server_error"),
        (503, "server_error"),
        (400, "invalid_request_error"),
    ],
)
def test_fault_status(client: TestClient, status: int, kind: str) -> None:
    response = post(client, chat(user()), **{"x-emulator-fault": f"status={status}"})
    assert response.status_code == status
    assert error_of(response)["type"] == kind


def test_fault_rate_limit_has_retry_after(client: TestClient) -> None:
    response = post(client, chat(user()), **{"x-emulator-fault": "status=429"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    error = error_of(response)
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")


def test_fault_quota(client: TestClient) -> None:
    response = post(client, chat(user()), **{"x-emulator-fault": "quota"})
    assert response.status_code == 429
    error = error_of(response)
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "retry-after" not in response.headers


def test_fault_delay_combines_with_status(client: TestClient) -> None:
    started = time.monotonic()
    response = post(client, chat(user()), **{"x-emulator-fault": "delay=50,status=503"})
    assert time.monotonic() - started >= 0.05
    assert response.status_code == 503


def test_bad_fault_header_is_a_loud_400(client: TestClient) -> None:
    response = post(client, chat(user()), **{"x-emulator-fault": "stauts=503"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "x-emulator-fault"


def test_fault_midstream(client: TestClient) -> None:
    body = chat(user(), stream=True)
    events = sse_events(post(client, body, **{"x-emulator-fault": "midstream"}).text)
    assert "[DONE]" not in events
    chunks = [json.loads(event) for event in events]
    assert [chunk["choices"][0]["delta"] for chunk in chunks[:3]] == [
        {"role": "assistant", "content": ""},
        {"content": "Saw"},
        {"content": " no"},
    ]
    assert chunks[3] == {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert len(chunks) == 4


def test_reasoning_effort_is_for_reasoning_models_and_counted_as_reasoning_tokens() -> None:
    def body(model: str, effort: str) -> bytes:
        messages = [{"role": "user", "content": "Hi"}]
        return json.dumps(
            {"model": model, "reasoning_effort": effort, "messages": messages}
        ).encode()

    usage = build_reply(parse_chat_request(body("o4-mini", "low"))).usage
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 16}
    with pytest.raises(OpenAIError) as refused:
        parse_chat_request(body("emulator-vision", "low"))
    assert refused.value.code == "unsupported_parameter"
    with pytest.raises(OpenAIError) as invalid:
        parse_chat_request(body("o4-mini", "extreme"))
    assert invalid.value.code == "invalid_value"
