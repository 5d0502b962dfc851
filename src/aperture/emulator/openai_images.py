"""The OpenAI emulator's Images API: ``POST /v1/images/generations`` (JSON) and
``POST /v1/images/edits`` (multipart), for the GPT image models (``gpt-image-*``).

Faithful to what OpenAI documents and answers (platform.openai.com/docs/api-reference/images,
the openai SDK's ``ImagesResponse``): ``prompt`` and (for edits) ``image`` are required;
``n`` is 1-10; ``size`` is ``1024x1024``, ``1536x1024``, ``1024x1536`` or ``auto``;
``quality`` ``low``/``medium``/``high``/``auto``; ``background``
``transparent``/``opaque``/``auto``; ``output_format`` ``png``/``jpeg``/``webp``; GPT image
models refuse ``response_format`` (they always answer ``b64_json``) and unknown fields.
Edits take PNG, JPEG or WebP images (``image`` or ``image[]``, up to 16) and an optional
PNG ``mask`` with an alpha channel, the size of the first image. Each picture says what was
asked (``drawing.draw_picture``); output tokens follow OpenAI's table per size and quality
(``medium`` for ``auto``); input tokens are the prompt's (characters / 4) plus
``EDIT_IMAGE_TOKENS`` per input image.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import math
import time
import warnings

import msgspec
import pybase64
from PIL import Image
from starlette.requests import Request
from starlette.responses import Response

from aperture.emulator.drawing import draw_picture
from aperture.emulator.openai_errors import OpenAIError, invalid_type, invalid_value, missing
from aperture.media.sniff import sniff

__all__ = ["EDIT_IMAGE_TOKENS", "OUTPUT_TOKENS", "edits", "generations"]

SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
QUALITIES = ("low", "medium", "high", "auto")
BACKGROUNDS = ("transparent", "opaque", "auto")
FORMATS = ("png", "jpeg", "webp")
MODERATIONS = ("low", "auto")
FIDELITIES = ("low", "high")
OUTPUT_TOKENS = {
    ("1024x1024", "low"): 272,
    ("1024x1024", "medium"): 1056,
    ("1024x1024", "high"): 4160,
    ("1024x1536", "low"): 408,
    ("1024x1536", "medium"): 1584,
    ("1024x1536", "high"): 6240,
    ("1536x1024", "low"): 400,
    ("1536x1024", "medium"): 1568,
    ("1536x1024", "high"): 6208,
}
"""Output tokens per picture, from OpenAI's image-generation guide."""
EDIT_IMAGE_TOKENS = 323
MAX_IMAGES = 16
MAX_PROMPT = 32000
_FIELDS = frozenset(
    {
        "model",
        "prompt",
        "n",
        "size",
        "quality",
        "background",
        "output_format",
        "output_compression",
        "moderation",
        "user",
        "partial_images",
        "stream",
        "input_fidelity",
    }
)
_EDIT_IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}


async def generations(request: Request) -> Response:
    body = await request.body()
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return _error(OpenAIError(400, "We could not parse the JSON body of your request."))
    if not isinstance(data, dict):
        return _error(invalid_type("body", "an object", data))
    try:
        fields = {k: v for k, v in data.items() if k != "input_fidelity"}
        if "input_fidelity" in data:
            raise _unknown("input_fidelity")
        return _answer(_check(fields), [])
    except OpenAIError as error:
        return _error(error)


async def edits(request: Request) -> Response:
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    try:
        if not content_type.startswith("multipart/form-data"):
            raise OpenAIError(
                400, "Invalid Content-Type header: expected multipart/form-data for image edits."
            )
        fields, images, mask = _read_form(body, content_type)
        if not images:
            raise missing("image")
        if len(images) > MAX_IMAGES:
            raise OpenAIError(
                400, f"Too many images: at most {MAX_IMAGES} may be edited.", param="image"
            )
        sizes = [_edit_image(data, f"image[{i}]") for i, data in enumerate(images)]
        if mask is not None:
            _check_mask(mask, sizes[0])
        return _answer(_check(fields), images)
    except OpenAIError as error:
        return _error(error)


def _check(fields: dict[str, object]) -> dict[str, object]:  # noqa: C901 - one check per field
    for name in fields:
        if name not in _FIELDS:
            raise _unknown(name)
    model = fields.get("model", "gpt-image-1")
    if not isinstance(model, str) or not model.startswith("gpt-image"):
        raise OpenAIError(
            400,
            f"The model '{model}' does not exist or is not an image model.",
            param="model",
            code="model_not_found",
        )
    prompt = fields.get("prompt")
    if prompt is None:
        raise missing("prompt")
    if not isinstance(prompt, str):
        raise invalid_type("prompt", "a string", prompt)
    if len(prompt) > MAX_PROMPT:
        raise OpenAIError(
            400,
            f"Invalid 'prompt': string too long. Expected a string with maximum length "
            f"{MAX_PROMPT}, but got a string with length {len(prompt)} instead.",
            param="prompt",
            code="string_above_max_length",
        )
    n = fields.get("n", 1)
    if isinstance(n, str) and n.isdigit():
        n = int(n)
    if not isinstance(n, int) or isinstance(n, bool):
        raise invalid_type("n", "an integer", n)
    if not 1 <= n <= 10:
        raise OpenAIError(
            400, f"Invalid 'n': integer must be between 1 and 10, got {n}.", param="n"
        )
    for name, allowed in (
        ("size", SIZES),
        ("quality", QUALITIES),
        ("background", BACKGROUNDS),
        ("output_format", FORMATS),
        ("moderation", MODERATIONS),
        ("input_fidelity", FIDELITIES),
    ):
        value = fields.get(name)
        if value is not None and value not in allowed:
            raise invalid_value(name, str(value), allowed)
    if fields.get("background") == "transparent" and fields.get("output_format") == "jpeg":
        raise OpenAIError(
            400,
            "Transparent background is not supported for the jpeg output format.",
            param="background",
        )
    return {**fields, "model": model, "prompt": prompt, "n": n}


def _answer(fields: dict[str, object], images: list[bytes]) -> Response:
    size = str(fields.get("size") or "auto")
    size = "1024x1024" if size == "auto" else size
    quality = str(fields.get("quality") or "auto")
    quality = "medium" if quality == "auto" else quality
    fmt = str(fields.get("output_format") or "png")
    width, height = (int(side) for side in size.split("x"))
    prompt = str(fields["prompt"])
    n = int(str(fields["n"]))
    said = f"{prompt} (edited from {len(images)} image{'s' if len(images) != 1 else ''})"
    picture = draw_picture(
        said if images else prompt, width=width, height=height, format=fmt.upper()
    )
    b64 = pybase64.b64encode(picture).decode("ascii")
    output = OUTPUT_TOKENS[(size, quality)] * n
    text = math.ceil(len(prompt) / 4)
    image_tokens = EDIT_IMAGE_TOKENS * len(images)
    body = {
        "created": int(time.time()),
        "background": "opaque" if fields.get("background") != "transparent" else "transparent",
        "data": [{"b64_json": b64} for _ in range(n)],
        "output_format": fmt,
        "quality": quality,
        "size": size,
        "usage": {
            "input_tokens": text + image_tokens,
            "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": text},
            "output_tokens": output,
            "total_tokens": text + image_tokens + output,
        },
    }
    return Response(msgspec.json.encode(body), media_type="application/json")


def _read_form(
    body: bytes, content_type: str
) -> tuple[dict[str, object], list[bytes], bytes | None]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not parsed.is_multipart():
        raise OpenAIError(400, "Could not parse multipart form.")
    fields: dict[str, object] = {}
    images: list[bytes] = []
    mask: bytes | None = None
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name in ("image", "image[]"):
            images.append(data)
        elif name == "mask":
            mask = data
        elif isinstance(name, str):
            fields[name] = data.decode("utf-8", "replace")
    return fields, images, mask


def _edit_image(data: bytes, param: str) -> tuple[int, int]:
    sniffed = sniff(data[:64])
    mime = sniffed.mime if sniffed is not None else None
    if mime not in _EDIT_IMAGE_TYPES:
        raise OpenAIError(
            400,
            f"Invalid file '{param}': unsupported mimetype ('{mime or 'application/octet-stream'}'"
            "). Supported file formats are 'image/jpeg', 'image/png', and 'image/webp'.",
            param=param,
            code="unsupported_file_mimetype",
        )
    return _open(data, param).size


def _check_mask(data: bytes, size: tuple[int, int]) -> None:
    sniffed = sniff(data[:64])
    if sniffed is None or sniffed.mime != "image/png":
        raise OpenAIError(400, "Invalid mask image: the mask must be a PNG.", param="mask")
    mask = _open(data, "mask")
    if "A" not in mask.getbands():
        raise OpenAIError(
            400, "Invalid mask image: the mask must have an alpha channel.", param="mask"
        )
    if mask.size != size:
        raise OpenAIError(
            400,
            f"Invalid mask image: the mask ({mask.size[0]}x{mask.size[1]}) must be the size of "
            f"the image ({size[0]}x{size[1]}).",
            param="mask",
        )


def _open(data: bytes, param: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
        return image
    except Exception as exc:
        raise OpenAIError(400, f"Invalid image file '{param}'.", param=param) from exc


def _unknown(name: str) -> OpenAIError:
    return OpenAIError(400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")


def _error(error: OpenAIError) -> Response:
    return Response(
        msgspec.json.encode(error.body()),
        status_code=error.status,
        headers=error.headers,
        media_type="application/json",
    )
