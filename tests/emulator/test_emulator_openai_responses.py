"""The emulator's ``/v1/responses`` through the official SDK: answers and events in the SDK's
own types, and the refusals the real API gives; Azure's paths and key header in front of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter
from starlette.testclient import TestClient

from aperture.emulator import create_emulator_app
from tests import sample_images

PNG = sample_images.data_uri(sample_images.png(30, 20), "image/png")
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
TOOLS: list[Any] = [
    {"type": "function", "name": "look", "parameters": {"type": "object"}, "strict": False}
]


@pytest.fixture
def http() -> Iterator[TestClient]:
    with TestClient(create_emulator_app()) as client:
        yield client


@pytest.fixture
def sdk(http: TestClient) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(
        base_url="http://testserver/openai/v1", api_key="x", http_client=http, max_retries=0
    )
    yield client
    client.close()


def image_input(detail: str | None = "low") -> list[Any]:
    image: dict[str, Any] = {"type": "input_image", "image_url": PNG}
    if detail is not None:
        image["detail"] = detail
    return [{"role": "user", "content": [{"type": "input_text", "text": "What?"}, image]}]


def test_an_answer_is_a_response_object(sdk: openai.OpenAI) -> None:
    raw = sdk.responses.with_raw_response.create(
        model="emulator-vision", instructions="Be brief.", input=image_input()
    )
    Response.model_validate(json.loads(raw.http_response.content))
    answer = raw.parse()
    assert answer.output_text == (
        'Saw 1 image: #1 image/png 30x20 detail=low. Asked: "What?" System: "Be brief."'
    )
    assert answer.usage is not None and answer.usage.input_tokens > 0


def test_the_stream_helper_accumulates_the_events(sdk: openai.OpenAI, http: TestClient) -> None:
    with sdk.responses.stream(model="emulator-vision", input="Say hi.") as stream:
        final = stream.get_final_response()
    assert final.output_text == 'Saw no images. Asked: "Say hi."'
    body = {"model": "emulator-vision", "input": "Hi.", "stream": True, "max_output_tokens": 16}
    auth = {"authorization": "Bearer x"}
    lines = http.post("/openai/v1/responses", json=body, headers=auth).text.splitlines()
    events = [
        EVENTS.validate_python(json.loads(line[6:])) for line in lines if line[:6] == "data: "
    ]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_a_forced_tool_call_streams_its_arguments(sdk: openai.OpenAI) -> None:
    with sdk.responses.stream(
        model="emulator-vision", input="Look.", tools=TOOLS, tool_choice="required"
    ) as stream:
        final = stream.get_final_response()
    call = final.output[0]
    assert call.type == "function_call" and call.name == "look"
    assert json.loads(call.arguments) == {"text": "Look."}
    follow = sdk.responses.create(
        model="emulator-vision",
        input=[
            {"type": "function_call", "call_id": call.call_id, "name": "look", "arguments": "{}"},
            {"type": "function_call_output", "call_id": call.call_id, "output": "a cat"},
        ],
    )
    assert follow.status == "completed"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": "hi", "messages": []}, "messages", "unknown_parameter"),
        ({"input": image_input(None)}, "input[0].content[1].detail", "missing_required_parameter"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, "input",
         None),
        ({"input": "hi", "max_output_tokens": 8}, "max_output_tokens", "integer_below_min_value"),
        ({"input": "hi", "text": {"format": {"type": "json_object"}}}, "input", None),
        ({"input": "hi", "previous_response_id": "resp_x"}, "previous_response_id",
         "previous_response_not_found"),
        ({"input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]},
         "input[0].content[0].type", "invalid_value"),
        ({"input": "hi", "temperature": 3}, "temperature", "decimal_out_of_range"),
        ({}, "input", "missing_required_parameter"),
    ],
)  # fmt: skip
def test_refusals_are_the_real_apis(
    http: TestClient, body: dict[str, Any], param: str, code: str | None
) -> None:
    answer = http.post(
        "/openai/v1/responses",
        json={"model": "emulator-vision", **body},
        headers={"authorization": "Bearer x"},
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["param"], error["code"]) == (param, code)


def test_images_to_a_text_model_are_refused(http: TestClient) -> None:
    answer = http.post(
        "/openai/v1/responses",
        json={"model": "emulator-text", "input": image_input()},
        headers={"authorization": "Bearer x"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "input[0].content[1].type"


def test_azure_wants_its_key_and_an_api_version(http: TestClient) -> None:
    body = {"model": "emulator-vision", "input": "hi"}
    assert http.post("/azure/openai/responses?api-version=v", json=body).status_code == 401
    keyed = {"api-key": "k"}
    assert http.post("/azure/openai/responses", json=body, headers=keyed).status_code == 404
    answer = http.post("/azure/openai/responses?api-version=v", json=body, headers=keyed)
    assert answer.status_code == 200
    Response.model_validate(answer.json())
    chat = {"model": "emulator-vision", "messages": [{"role": "user", "content": "hi"}]}
    path = "/azure/openai/deployments/emulator-vision/chat/completions?api-version=v"
    assert http.post(path, json=chat, headers=keyed).status_code == 200
    assert http.post("/azure/openai/v1/responses", json=body, headers=keyed).status_code == 200


def test_logprobs_come_when_included(sdk: openai.OpenAI, http: TestClient) -> None:
    body: dict[str, Any] = {
        "model": "emulator-vision",
        "input": "Say hi.",
        "include": ["message.output_text.logprobs"],
        "top_logprobs": 2,
    }
    answer = http.post("/openai/v1/responses", json=body, headers={"authorization": "Bearer x"})
    parsed = Response.model_validate(answer.json())
    part = parsed.output[0].content[0]  # type: ignore[union-attr]
    assert part.type == "output_text" and part.logprobs
    assert "".join(t.token for t in part.logprobs) == part.text
    assert all(len(t.top_logprobs) == 2 for t in part.logprobs)
    lines = http.post(
        "/openai/v1/responses", json={**body, "stream": True}, headers={"authorization": "Bearer x"}
    ).text.splitlines()
    events = [
        EVENTS.validate_python(json.loads(line[6:])) for line in lines if line[:6] == "data: "
    ]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert "".join(t.token for e in deltas for t in e.logprobs) == part.text
    refused = http.post(
        "/openai/v1/responses",
        json={**body, "include": ["everything"]},
        headers={"authorization": "Bearer x"},
    )
    assert refused.json()["error"]["param"] == "include[0]"
