"""The Vercel AI SDK (``ai`` with ``@ai-sdk/openai`` and ``@ai-sdk/anthropic``) through the
gateway: ``generateText`` and ``streamText`` with ``openai(model)`` (its default, the Responses
API), ``openai.chat(model)`` and ``createAnthropic({baseURL})``: an image part, a tool the SDK
runs between two steps, a PDF file part, ``generateObject``, the next turn built from the
answer's messages (``item_reference`` on the Responses API) and a refusal as the SDK's
``APICallError``."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from tests import sample_images
from tests.documents.pdfs import text_pdf
from tests.node.harness import run_script
from tests.upstreams import Recorder

REPORT = text_pdf("Quarterly report")


def followups(bodies: list[bytes]) -> list[dict[str, Any]]:
    """The bodies whose last turn is the follow-up question."""
    found = []
    for raw in bodies:
        body = json.loads(raw)
        last = body["messages"][-1]["content"]
        text = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last)
        if text == "And again?":
            found.append(body)
    return found


def test_generate_and_stream_text_through_the_vercel_ai_sdk(
    node: str, gateway_url: str, recorder: tuple[Recorder, str], tmp_path: Path
) -> None:
    image, pdf = tmp_path / "photo.jpg", tmp_path / "report.pdf"
    image.write_bytes(sample_images.jpeg(64, 48))
    pdf.write_bytes(REPORT)
    before = len(recorder[0].bodies)
    result = run_script(
        node,
        "vercel.mjs",
        APERTURE_URL=f"{gateway_url}/v1",
        APERTURE_MODEL="recorded-vision",
        APERTURE_CLAUDE="claude-recorded",
        APERTURE_IMAGE_FILE=str(image),
        APERTURE_PDF_FILE=str(pdf),
    )
    assert result["warnings"] == []  # no setting was dropped by any of the three
    # The SDK ran the tool once per API, with the arguments the model gave.
    assert result["calls"] == [{"text": "What is the weather?"}] * 3
    for api in ("responses", "chat", "anthropic"):
        check(api, result[api])
    # Each follow-up reached its provider with the earlier answer's text as the assistant turn
    # (the Responses one through the item the SDK named by id).
    answer = result["responses"]["generated"]["text"]
    # The PDF reached Anthropic as the document block it was.
    documents = [
        block
        for raw in recorder[0].bodies[before:]
        for message in json.loads(raw).get("messages", [])
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "document"
    ]
    assert [base64.b64decode(d["source"]["data"]) for d in documents] == [REPORT]
    sent = followups(recorder[0].bodies[before:])
    assert len(sent) == 3
    for body in sent:
        assistant = next(m for m in body["messages"] if m["role"] == "assistant")
        content = assistant["content"]
        text = content if isinstance(content, str) else content[0]["text"]
        assert text == answer


def check(api: str, got: dict[str, Any]) -> None:
    seen = "Saw 1 image: #1 image/jpeg 64x48 detail=auto."
    generated = got["generated"]
    assert generated["text"] == f'{seen} Asked: "Describe this image." System: "Be brief."', api
    assert generated["finish"] == "stop"
    assert got["followed"] == 'Saw 1 image: #1 image/jpeg 64x48 detail=auto. Asked: "And again?"'

    assert generated["usage"]["input"] > 0 and generated["usage"]["output"] > 0
    if api != "anthropic":  # an OpenAI upstream counts the image's 85 + 170 tokens
        assert generated["usage"]["input"] > 255

    streamed = got["streamed"]
    assert streamed["text"] == streamed["deltas"] == f'{seen} Asked: "Stream it."', api
    assert streamed["finish"] == "stop" and streamed["usage"] > 0

    tools = got["tools"]
    assert tools["steps"] == ["tool-calls", "stop"], api
    assert tools["calls"] == [["weather", {"text": "What is the weather?"}]]
    assert tools["results"] == ["sunny"]
    assert tools["text"] == 'Saw no images. Asked: "What is the weather?"'

    if api == "anthropic":
        assert got["document"] == 'Saw no images. Asked: "Summarise."'
    else:  # an OpenAI-compatible upstream without documents gets the page as an image
        assert got["document"].startswith("Saw 1 image: #1 image/png 1224x1584 detail=auto.")
        assert "[report.pdf, 1 page]" in got["document"]
    assert got["object"] == {"images": 0, "asked": "Count the images."}, api

    error = got["error"]
    assert (error["isAPICallError"], error["status"]) == (True, 400), api
    assert error["body"]["error"]["code"] == "unsupported_capability"
    assert "'demo-text' does not accept images" in error["body"]["error"]["message"]
