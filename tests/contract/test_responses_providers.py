"""The Responses API to every provider kind: an image, stream and not, and a tool round trip
(function_call, function_call_output, answer), through the official SDK and the emulators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.contract.test_providers import JPEG, KINDS, PNG, gateway  # noqa: F401

TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "describe",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
    }
]

pytestmark = pytest.mark.parametrize("kind", sorted(KINDS))


@pytest.fixture(scope="module")
def sdk(gateway: str) -> Iterator[openai.OpenAI]:  # noqa: F811 - the imported fixture
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0) as client:
        yield client


def ask(text: str, *images: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "input_text", "text": text}]
    parts += [{"type": "input_image", "image_url": url, "detail": "auto"} for url in images]
    return {"role": "user", "content": parts}


def test_images(sdk: openai.OpenAI, kind: str) -> None:
    answer = sdk.responses.create(
        model=kind, instructions="Be brief.", input=[ask("Compare.", JPEG, PNG)]
    )
    assert answer.output_text.startswith("Saw 2 images: #1 image/jpeg 64x48"), answer.output_text
    assert "#2 image/png 30x20" in answer.output_text
    assert answer.status == "completed"
    assert answer.usage is not None and answer.usage.output_tokens > 0


def test_an_image_streamed(sdk: openai.OpenAI, kind: str) -> None:
    whole = sdk.responses.create(model=kind, input=[ask("What?", JPEG)]).output_text
    with sdk.responses.stream(model=kind, input=[ask("What?", JPEG)]) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == whole
    assert whole.startswith("Saw 1 image: #1 image/jpeg 64x48")
    assert final.usage is not None and final.usage.output_tokens > 0


def test_a_tool_round_trip(sdk: openai.OpenAI, kind: str) -> None:
    first = [ask("Use it", JPEG)]
    with sdk.responses.stream(
        model=kind, input=first, tools=TOOLS, tool_choice="required"
    ) as stream:
        called = stream.get_final_response()
    (call,) = [item for item in called.output if item.type == "function_call"]
    assert call.name == "describe"
    assert json.loads(call.arguments) == {"text": "Use it"}
    answer = sdk.responses.create(
        model=kind,
        tools=TOOLS,
        # As in the Chat Completions contract: some emulators call a tool whenever offered.
        tool_choice="none",
        input=[
            *first,
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "a photo"},
            ask("Thanks"),
        ],
    )
    assert answer.output_text.startswith("Saw 1 image"), answer.output_text
    assert 'Asked: "Thanks"' in answer.output_text
