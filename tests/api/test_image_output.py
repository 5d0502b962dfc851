"""Images a model makes reach the client: Gemini image models and OpenAI-compatible servers
that answer with ``message.images``, through the official openai SDK, stream and not."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from aperture.app import create_apps
from aperture.emulator.drawing import draw_picture
from aperture.settings import parse_settings
from tests import sample_images
from tests.servers import serve, serve_together

PROMPT = "A lighthouse at dusk, drawn in ink"
ROUTER_PNG = sample_images.png(12, 8, "green")
ROUTER_URI = sample_images.data_uri(ROUTER_PNG, "image/png")

MASTER = "sk-master"
CONFIG = """
auth: {master_key: sk-master, key_pepper: pepper}
storage: {database: "sqlite:///${STATE}/aperture.db", spool_dir: "${STATE}/spool"}
providers:
  - {name: gemini-emu, kind: gemini, base_url: "${EMULATOR}/gemini", api_key: test-key}
  - {name: router, kind: openai, base_url: "${ROUTER}/v1", api_key: k}
  - {name: openai-emu, kind: openai, base_url: "${EMULATOR}/openai/v1", api_key: k}
models:
  - {name: draw, provider: gemini-emu, upstream_model: gemini-2.5-flash-image}
  - {name: gemini-text, provider: gemini-emu, upstream_model: gemini-2.5-flash}
  - {name: routed-draw, provider: router, upstream_model: some/image-model,
     capabilities: [vision, image_output]}
  - {name: gpt-image-1, provider: openai-emu}
"""


async def _router(request: Request) -> Response:
    """An OpenAI-compatible router relaying an image model: ``message.images`` data URIs."""
    body = await request.json()
    image = {"type": "image_url", "image_url": {"url": ROUTER_URI}}
    if not body.get("stream"):
        message = {"role": "assistant", "content": "Here it is.", "images": [image]}
        return JSONResponse(
            {
                "id": "gen-1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
            }
        )

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        data = {"id": "gen-1", "object": "chat.completion.chunk", "created": 1}
        data |= {"model": body["model"], "choices": [choice]}
        return b"data: " + JSONResponse(data).body + b"\n\n"

    async def events() -> Iterator[bytes]:  # type: ignore[misc]
        yield chunk({"role": "assistant", "content": "Here it is."})
        yield chunk({"images": [image]})
        yield chunk({}, "stop")
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture(scope="module")
def gateways(
    emulator_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    router = Starlette(routes=[Route("/v1/chat/completions", _router, methods=["POST"])])
    with serve(router) as router_url:
        env = {
            "EMULATOR": emulator_url,
            "ROUTER": router_url,
            "STATE": str(tmp_path_factory.mktemp("image-output")),
        }
        with serve_together(*create_apps(parse_settings(CONFIG, env))) as (public, admin):
            yield public, admin


@pytest.fixture
def sdk(gateways: tuple[str, str]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateways[0]}/v1", api_key=MASTER, max_retries=0) as client:
        yield client


def _audit(admin: str, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        found = httpx.get(
            f"{admin}/v1/admin/audit",
            params={"request_id": request_id},
            headers={"authorization": f"Bearer {MASTER}"},
            timeout=10,
        ).json()["data"]
        if found:
            event: dict[str, Any] = found[0]
            return event
        assert time.monotonic() < deadline, "no audit event"
        time.sleep(0.05)


def test_the_audit_describes_generated_images_never_keeps_them(
    sdk: openai.OpenAI, gateways: tuple[str, str]
) -> None:
    raw = sdk.images.with_raw_response.generate(model="draw", prompt=PROMPT)
    png = base64.b64decode(raw.parse().data[0].b64_json or "")  # type: ignore[index]
    event = _audit(gateways[1], raw.headers["x-request-id"])
    assert event["generated_images"] == [
        {"sha256": hashlib.sha256(png).hexdigest(), "mime": "image/png", "bytes": len(png)}
    ]
    assert base64.b64encode(png).decode()[:200] not in json.dumps(event)
    stream = sdk.chat.completions.with_raw_response.create(
        model="draw",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        extra_body={"modalities": ["text", "image"]},
    )
    for _ in stream.parse():
        pass
    streamed = _audit(gateways[1], stream.headers["x-request-id"])
    assert [i["sha256"] for i in streamed["generated_images"]] == [
        hashlib.sha256(draw_picture(PROMPT)).hexdigest()
    ]


def _png_of(url: str) -> bytes:
    head, _, data = url.partition(",")
    assert head == "data:image/png;base64"
    return base64.b64decode(data, validate=True)


def _images(message: Any) -> list[dict[str, Any]]:
    extra = message.model_extra or {}
    images = extra.get("images")
    assert isinstance(images, list), message
    return images


def test_a_gemini_image_model_draws_what_was_asked(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="draw",
        messages=[{"role": "user", "content": PROMPT}],
        extra_body={"modalities": ["text", "image"]},
    )
    message = completion.choices[0].message
    assert PROMPT in (message.content or "")
    (image,) = _images(message)
    assert image["type"] == "image_url"
    png = _png_of(image["image_url"]["url"])
    assert png == draw_picture(PROMPT)  # what the emulator drew, relayed byte for byte
    assert Image.open(io.BytesIO(png)).size == (1024, 1024)
    assert completion.usage is not None and completion.usage.completion_tokens >= 1290


def test_a_gemini_image_model_streams_its_picture_as_a_delta(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="draw",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        extra_body={"modalities": ["text", "image"]},
    )
    text, images, finish = "", [], None
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            images += (choice.delta.model_extra or {}).get("images") or []
            finish = choice.finish_reason or finish
    assert PROMPT in text
    assert len(images) == 1 and _png_of(images[0]["image_url"]["url"]) == draw_picture(PROMPT)
    assert finish == "stop"


def test_images_alone_leave_the_text_out(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="draw",
        messages=[{"role": "user", "content": PROMPT}],
        extra_body={"modalities": ["image"]},
    )
    message = completion.choices[0].message
    assert message.content is None
    assert len(_images(message)) == 1


def test_a_model_without_image_output_is_refused_before_the_call(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="gemini-text",
            messages=[{"role": "user", "content": PROMPT}],
            extra_body={"modalities": ["text", "image"]},
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("unsupported_capability", "modalities")
    assert "draw" in error["message"]


def test_text_answers_carry_no_images_field(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="gemini-text", messages=[{"role": "user", "content": "Hello"}]
    )
    assert "images" not in (completion.choices[0].message.model_extra or {})


def test_an_openai_compatible_router_s_images_are_relayed(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="routed-draw",
        messages=[{"role": "user", "content": PROMPT}],
        extra_body={"modalities": ["text", "image"]},
    )
    (image,) = _images(completion.choices[0].message)
    assert _png_of(image["image_url"]["url"]) == ROUTER_PNG


def test_an_openai_compatible_router_s_streamed_images_are_relayed(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="routed-draw",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        extra_body={"modalities": ["text", "image"]},
    )
    images = [
        image
        for chunk in stream
        for choice in chunk.choices
        for image in (choice.delta.model_extra or {}).get("images") or []
    ]
    assert [_png_of(i["image_url"]["url"]) for i in images] == [ROUTER_PNG]


def test_images_generate_with_an_openai_image_model(sdk: openai.OpenAI) -> None:
    result = sdk.images.generate(model="gpt-image-1", prompt=PROMPT, n=2, size="1536x1024")
    assert result.data is not None and len(result.data) == 2
    png = base64.b64decode(result.data[0].b64_json or "", validate=True)
    assert png == draw_picture(PROMPT, width=1536, height=1024)
    assert result.usage is not None and result.usage.output_tokens == 2 * 1568


def test_images_generate_with_a_gemini_image_model(sdk: openai.OpenAI) -> None:
    result = sdk.images.generate(model="draw", prompt=PROMPT)
    assert result.data is not None and len(result.data) == 1
    assert base64.b64decode(result.data[0].b64_json or "") == draw_picture(PROMPT)


def test_images_edit_sends_the_files_and_the_mask(sdk: openai.OpenAI) -> None:
    photo = sample_images.png(40, 30, "blue")
    buffer = io.BytesIO()
    Image.new("RGBA", (40, 30), (0, 0, 0, 0)).save(buffer, format="PNG")
    result = sdk.images.edit(
        model="gpt-image-1",
        image=[("a.png", photo, "image/png"), ("b.png", ROUTER_PNG, "image/png")],
        mask=("mask.png", buffer.getvalue(), "image/png"),
        prompt=PROMPT,
    )
    assert result.data is not None
    png = base64.b64decode(result.data[0].b64_json or "")
    assert png == draw_picture(f"{PROMPT} (edited from 2 images)")


def test_images_edit_refuses_what_is_not_an_image(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(model="gpt-image-1", image=("a.png", b"not a picture"), prompt="x")
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == "image[0]"


def test_a_mismatched_mask_is_the_provider_s_refusal(sdk: openai.OpenAI) -> None:
    photo = sample_images.png(40, 30, "blue")
    with pytest.raises(openai.BadRequestError):
        sdk.images.edit(
            model="gpt-image-1",
            image=("a.png", photo, "image/png"),
            mask=("mask.png", sample_images.png(10, 10), "image/png"),
            prompt=PROMPT,
        )


def test_url_answers_and_text_models_are_refused(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(model="gpt-image-1", prompt=PROMPT, response_format="url")
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == "response_format"
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(model="gemini-text", prompt=PROMPT)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "unsupported_capability"
    assert caught.value.body["param"] == "model"


# The Responses API: the image_generation tool asks; image_generation_call items answer.

DRAW_TOOL: Any = [{"type": "image_generation", "output_format": "png"}]


def test_responses_relays_a_picture_as_an_image_generation_call(
    sdk: openai.OpenAI, gateways: tuple[str, str]
) -> None:
    raw = sdk.responses.with_raw_response.create(model="draw", input=PROMPT, tools=DRAW_TOOL)
    response = raw.parse()
    assert PROMPT in response.output_text
    (call,) = [item for item in response.output if item.type == "image_generation_call"]
    assert call.status == "completed" and call.id.startswith("ig_")
    assert call.output_format == "png"
    assert base64.b64decode(call.result or "", validate=True) == draw_picture(PROMPT)
    event = _audit(gateways[1], raw.headers["x-request-id"])
    assert [i["sha256"] for i in event["generated_images"]] == [
        hashlib.sha256(draw_picture(PROMPT)).hexdigest()
    ]


def test_responses_streams_a_picture_with_the_sdk_s_events(sdk: openai.OpenAI) -> None:
    with sdk.responses.stream(model="draw", input=PROMPT, tools=DRAW_TOOL) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    image_events = [k for k in kinds if k.startswith("response.image_generation_call.")]
    assert image_events == [
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
        "response.image_generation_call.completed",
    ]
    assert kinds[-1] == "response.completed"
    assert PROMPT in final.output_text
    (call,) = [item for item in final.output if item.type == "image_generation_call"]
    assert base64.b64decode(call.result or "") == draw_picture(PROMPT)


def test_responses_relays_an_openai_compatible_router_s_streamed_image(
    sdk: openai.OpenAI,
) -> None:
    with sdk.responses.stream(
        model="routed-draw",
        input=PROMPT,
        tools=DRAW_TOOL,
        tool_choice={"type": "image_generation"},
    ) as stream:
        final = stream.get_final_response()
    (call,) = [item for item in final.output if item.type == "image_generation_call"]
    assert base64.b64decode(call.result or "") == ROUTER_PNG


def test_responses_refuses_the_image_tool_for_a_model_that_cannot_draw(
    sdk: openai.OpenAI,
) -> None:
    lookup: Any = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(model="gemini-text", input=PROMPT, tools=[lookup, *DRAW_TOOL])
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("unsupported_capability", "tools[1]")
    assert "draw" in error["message"]
