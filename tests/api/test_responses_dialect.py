"""POST /v1/responses through the official openai SDK, to every kind of upstream."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests import sample_images

JPEG_URI = sample_images.data_uri(sample_images.jpeg(64, 48), "image/jpeg")
PNG_URI = sample_images.data_uri(sample_images.png(30, 20), "image/png")
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "describe",
        "description": "Describe the text.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
    }
]


def ask(text: str, *images: str) -> list[Any]:
    content: list[dict[str, Any]] = [{"type": "input_text", "text": text}]
    content += [{"type": "input_image", "image_url": url, "detail": "auto"} for url in images]
    return [{"role": "user", "content": content}]


def events_of(http: httpx.Client, body: dict[str, Any]) -> list[Any]:
    """Every event of a stream, each checked against the SDK's event union."""
    events = []
    with http.stream("POST", "/v1/responses", json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                event = EVENTS.validate_python(json.loads(line[6:]))
                assert event.type == kind
                events.append(event)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    return events


@pytest.mark.parametrize("model", ["demo-vision", "claude-vision", "gemini-vision"])
def test_an_image_to_each_kind(client: openai.OpenAI, http: httpx.Client, model: str) -> None:
    raw = client.responses.with_raw_response.create(
        model=model,
        instructions="Be brief.",
        input=ask("Compare.", JPEG_URI, PNG_URI),
        max_output_tokens=300,
    )
    response = raw.parse()
    assert response.output_text.startswith("Saw 2 images: #1 image/jpeg 64x48")
    assert "#2 image/png 30x20" in response.output_text
    assert response.status == "completed" and response.model == model
    assert response.id.startswith("resp_")
    assert response.usage is not None and response.usage.input_tokens > 0
    assert raw.headers["x-aperture-image-tokens"]
    # The exact JSON, not only what the SDK's lenient construction accepted.
    Response.model_validate(json.loads(raw.http_response.content))

    with client.responses.stream(model=model, input=ask("Compare.", JPEG_URI)) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text
    assert final.output_text.startswith("Saw 1 image: #1 image/jpeg 64x48")
    assert final.status == "completed" and final.usage is not None

    events = events_of(http, {"model": model, "input": ask("Compare.", PNG_URI)})
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * (len(events) - 8),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[-1].response.output[0].content[0].text.startswith("Saw 1 image: #1 image/png")


def test_a_string_input_and_create_stream(client: openai.OpenAI) -> None:
    response = client.responses.create(model="demo-text", input="Hello there")
    assert response.output_text
    assert response.output[0].type == "message"
    events = list(client.responses.create(model="demo-text", input="Hello there", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert events[-1].response.output_text == response.output_text  # type: ignore[union-attr]


@pytest.mark.parametrize("model", ["demo-vision", "claude-vision", "gemini-vision"])
def test_a_tool_round_trip(client: openai.OpenAI, http: httpx.Client, model: str) -> None:
    first = client.responses.create(
        model=model, input=ask("Use the tool", JPEG_URI), tools=TOOLS, tool_choice="required"
    )
    Response.model_validate(first.model_dump(mode="json"))
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "describe"
    assert json.loads(call.arguments) == {"text": "Use the tool"}

    # The answer goes back with the call, as agents send it: the earlier output as input.
    history: list[Any] = [
        *ask("Use the tool", JPEG_URI),
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "a blue square"},
    ]
    second = client.responses.create(model=model, input=history, tools=TOOLS)
    assert second.output_text
    assert second.status == "completed"

    events = events_of(
        http,
        {
            "model": model,
            "input": ask("Use the tool"),
            "tools": TOOLS,
            "tool_choice": {"type": "function", "name": "describe"},
        },
    )
    arguments = "".join(
        e.delta for e in events if e.type == "response.function_call_arguments.delta"
    )
    assert json.loads(arguments) == {"text": "Use the tool"}
    (done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert done.arguments == arguments
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.type == "function_call" and added.item.name == "describe"
    assert events[-1].type == "response.completed"
    assert events[-1].response.output[-1].arguments == arguments

    with client.responses.stream(
        model=model, input=ask("Use the tool"), tools=TOOLS, tool_choice="required"
    ) as stream:
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["function_call"]


def test_json_format_and_an_incomplete_answer(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="demo-vision",
        input=ask("Count them as JSON", JPEG_URI),
        text={"format": {"type": "json_object"}},
    )
    assert json.loads(response.output_text)["images"] == 1

    short = client.responses.create(
        model="demo-vision", input=ask("Describe", JPEG_URI), max_output_tokens=2
    )
    assert short.status == "incomplete"
    assert short.incomplete_details is not None
    assert short.incomplete_details.reason == "max_output_tokens"


def test_errors_have_the_openai_envelope_and_a_path_into_input(client: openai.OpenAI) -> None:
    bad = [
        {"role": "user", "content": "Look"},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "this"},
                {"type": "input_image", "image_url": "data:image/png;base64,bm90IGFuIGltYWdl"},
            ],
        },
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="demo-vision", input=bad)
    assert caught.value.body["param"] == "input[1].content[1].image_url"  # type: ignore[index]

    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
        ),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
        ({"input": "hi", "previous_response_id": ""}, "previous_response_id"),
        ({"input": "hi", "conversation": "c"}, "conversation"),
        ({"input": "hi", "base_url": "http://evil"}, "base_url"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": [{"type": "input_image"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
        ),
        (
            {
                "input": [
                    {
                        "type": "function_call_output",
                        "call_id": "c",
                        "output": [{"type": "input_image", "image_url": JPEG_URI}],
                    }
                ]
            },
            "input[0].output[0]",
        ),
    ]
    for body, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(model="demo-vision", extra_body=body)  # type: ignore[call-overload]
        assert caught.value.body["param"] == param, body  # type: ignore[index]
        assert caught.value.response.headers["x-should-retry"] == "false"


def test_an_image_refused_by_the_model_names_its_input_path(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="demo-text", input=ask("Look", JPEG_URI))
    assert caught.value.body["param"] == "input[0].content[1]"  # type: ignore[index]


def test_a_failure_mid_stream_is_response_failed(http: httpx.Client) -> None:
    events = events_of(http, {"model": "failing-midstream", "input": ask("Hi", JPEG_URI)})
    assert events[0].type == "response.created"
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1].response.status == "failed"
    assert events[-1].response.error is not None
