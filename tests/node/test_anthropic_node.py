"""The official ``@anthropic-ai/sdk`` npm package through the gateway's Messages API: a base64
image, the ``messages.stream`` helper (text and tool input deltas), a tool round trip,
``messages.parse`` with structured output, a PDF document block, count_tokens and the SDK's
typed errors carrying the gateway's error body."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from tests import sample_images
from tests.documents.pdfs import text_pdf
from tests.node.harness import run_script
from tests.upstreams import Recorder

REPORT = text_pdf("Quarterly report\nRevenue rose 12 percent")


def sent_with(recorder: Recorder, kind: str) -> list[dict[str, Any]]:
    """The bodies the recorder was sent holding a user block of ``kind``."""
    found = []
    for raw in recorder.bodies:
        body = json.loads(raw)
        blocks = [
            block
            for message in body.get("messages", [])
            if isinstance(message.get("content"), list)
            for block in message["content"]
        ]
        if any(block.get("type") == kind for block in blocks):
            found.append(body)
    return found


def test_messages_through_the_node_sdk(
    node: str, gateway_url: str, recorder: tuple[Recorder, str], tmp_path: Path
) -> None:
    image, pdf = tmp_path / "photo.jpg", tmp_path / "report.pdf"
    image.write_bytes(sample_images.jpeg(64, 48))
    pdf.write_bytes(REPORT)
    result = run_script(
        node,
        "anthropic.mjs",
        APERTURE_URL=gateway_url,
        APERTURE_IMAGE_FILE=str(image),
        APERTURE_PDF_FILE=str(pdf),
    )

    created = result["created"]
    assert created["text"] == (
        'Saw 1 image: #1 image/jpeg 64x48 detail=auto. Asked: "Describe this image." '
        'System: "Be brief."'
    )
    assert (created["stop"], created["model"]) == ("end_turn", "claude-vision")
    assert created["usage"]["input_tokens"] > 0 and created["usage"]["output_tokens"] > 0

    # The stream helper across dialects (an OpenAI upstream): its text events add up.
    streamed = result["streamed"]
    assert streamed["text"] == streamed["deltas"]
    assert streamed["text"] == 'Saw 1 image: #1 image/jpeg 64x48 detail=auto. Asked: "Stream it."'
    assert (streamed["first"], streamed["last"]) == ("message_start", "message_stop")
    assert streamed["stop"] == "end_turn" and streamed["usage"]["output_tokens"] > 0
    # The image's tiles are in the prompt the OpenAI upstream counted (85 + 170).
    assert streamed["usage"]["input_tokens"] > 255

    tool = result["tool"]
    assert (tool["stop"], tool["name"], tool["input"]) == (
        "tool_use",
        "describe",
        {"text": "Use the tool."},
    )
    assert tool["answer"] == 'Saw no images. Asked: "What did the tool say?"'
    (turn,) = sent_with(recorder[0], "tool_result")[-1:]
    result_block = turn["messages"][2]["content"][0]
    assert result_block["tool_use_id"] == tool["id"]
    assert turn["messages"][1]["content"][0]["type"] == "tool_use"

    streamed_tool = result["streamedTool"]
    assert json.loads(streamed_tool["json"]) == {"text": "Use the tool."}
    assert streamed_tool["stop"] == "tool_use"
    assert [(b["type"], b["name"], b["input"]) for b in streamed_tool["content"]] == [
        ("tool_use", "describe", {"text": "Use the tool."})
    ]
    asked = {"images": 0, "asked": "Count the images."}
    assert result["parsed"] == {"claude-vision": asked, "demo-vision": asked}

    # Anthropic gets the document block itself; a vision model without documents, its page.
    documents = result["documents"]
    assert documents["claude-recorded"]["text"] == 'Saw no images. Asked: "Summarise the report."'
    (body,) = sent_with(recorder[0], "document")[-1:]
    document = body["messages"][0]["content"][0]
    assert base64.b64decode(document["source"]["data"]) == REPORT
    assert documents["demo-vision"]["text"].startswith(
        'Saw 1 image: #1 image/png 1224x1584 detail=auto. Asked: "[report.pdf, 1 page]'
    )
    assert documents["demo-vision"]["input_tokens"] >= 765  # the page's tiles

    assert result["counted"] == {"input_tokens": created["usage"]["input_tokens"]}

    errors = result["errors"]
    unsupported = errors["unsupported"]
    assert (unsupported["class"], unsupported["isBadRequest"], unsupported["status"]) == (
        "BadRequestError",
        True,
        400,
    )
    assert unsupported["body"]["type"] == "error"
    error = unsupported["body"]["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "unsupported_capability")
    assert error["message"].startswith("messages[0].content[0]: The model 'demo-text'")
    undecodable = errors["undecodable"]
    assert undecodable["isBadRequest"] and undecodable["body"]["error"]["code"] == (
        "image_decode_error"
    )
    assert undecodable["body"]["error"]["message"].startswith("messages[0].content[0].source.data:")
    unknown = errors["unknown_model"]
    assert (unknown["class"], unknown["isNotFound"], unknown["type"]) == (
        "NotFoundError",
        True,
        "not_found_error",
    )
    assert unknown["body"]["error"]["code"] == "model_not_found"
