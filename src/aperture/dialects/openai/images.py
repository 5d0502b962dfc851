"""OpenAI's Images API: ``/v1/images/generations`` (JSON) and ``/v1/images/edits``
(multipart) -> the canonical request, and the canonical answer -> ``ImagesResponse``. Pure.

An image request becomes a one-message chat request carrying an ``ImageTask``: the prompt is
the user text and the images to edit (then the mask) are its image parts, as data URIs, so
the gateway's image intake, policy and capability checks see them as they see a chat's.
Fields are those of the openai SDK's ``ImageGenerateParams`` / ``ImageEditParams``; the ones
the gateway does not model are kept for pass-through, as in chat.

Refused here, clearly: ``response_format: "url"`` (the gateway answers ``b64_json``; a URL
would need a store for the images, which is not configured), ``stream: true`` (partial
images are not relayed), and edits without an image.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
from email.message import MIMEPart as MimeMessage
from typing import Any

import msgspec

from aperture.dialects.decoding import decode_request
from aperture.dialects.openai.inbound import extra_fields
from aperture.errors import InvalidJsonError, InvalidRequestError, quote
from aperture.media.payloads import Payloads
from aperture.model import ChatRequest, ChatResponse, Image, ImageTask, Message, Part, Text

__all__ = [
    "ImageGenerationRequest",
    "ImagesLocator",
    "parse_edit_request",
    "parse_generation_request",
    "render_images",
]

_GENERATE_FIELDS = frozenset(
    {
        "prompt",
        "model",
        "n",
        "size",
        "quality",
        "background",
        "output_format",
        "output_compression",
        "moderation",
        "response_format",
        "stream",
        "partial_images",
        "style",
        "user",
    }
)
_EDIT_FIELDS = _GENERATE_FIELDS | {"image", "image[]", "mask", "input_fidelity"}
_MAX_N = 10  # OpenAI's limit for every image model


class ImageGenerationRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    prompt: str
    model: str | None = None
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    moderation: str | None = None
    response_format: str | None = None
    stream: bool | None = None
    input_fidelity: str | None = None
    user: str | None = None


_DECODER = msgspec.json.Decoder(ImageGenerationRequest)


class ImagesLocator:
    """Paths in the Images API's shape: ``image[0]``, ``mask``, ``prompt``."""

    max_tokens = "n"
    reasoning = "model"
    logprobs = "logprobs"  # the Images API has no such field
    image_output = "model"  # the model named is what cannot draw

    def __init__(self, images: int = 0, mask: bool = False) -> None:
        self._images, self._mask = images, mask

    def image(self, message: int, part: int) -> str:
        # Part 0 is the prompt; then the images in order; then the mask.
        if self._mask and part == self._images + 1:
            return "mask"
        return f"image[{part - 1}]"

    def part(self, message: int, part: int) -> str:
        return "prompt" if part == 0 else self.image(message, part)


def parse_generation_request(
    body: bytes, payloads: Payloads | None = None
) -> tuple[ChatRequest, ImagesLocator]:
    """A ``/v1/images/generations`` JSON body.

    Raises:
        InvalidJsonError, InvalidRequestError: with the offending field as ``param``.
    """
    fields, keys = decode_request(body, _DECODER, payloads)
    extra = extra_fields(body, keys, _GENERATE_FIELDS)
    return _request(fields, (), None, extra), ImagesLocator()


def parse_edit_request(body: bytes, content_type: str) -> tuple[ChatRequest, ImagesLocator]:
    """A ``/v1/images/edits`` multipart body: ``image`` or ``image[]`` files (one or more), an
    optional ``mask`` file and the other fields as text."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidRequestError(
            "Image edits are sent as multipart/form-data, with the images as files.",
            param="image",
        )
    form = _parse_form(body, content_type)
    values: dict[str, Any] = {}
    images: list[str] = []
    mask: str | None = None
    for name, part in form:
        if name in ("image", "image[]"):
            images.append(_data_uri(part, f"image[{len(images)}]"))
        elif name == "mask":
            mask = _data_uri(part, "mask")
        elif name not in _EDIT_FIELDS:
            raise InvalidRequestError(f"Unknown parameter: {quote(name)}.", param=name)
        else:
            values[name] = _text(part, name)
    if not images:
        raise InvalidRequestError("An image edit needs at least one image file.", param="image")
    fields = ImageGenerationRequest(
        prompt=_required(values, "prompt"),
        model=values.get("model"),
        n=_int(values, "n"),
        size=values.get("size"),
        quality=values.get("quality"),
        background=values.get("background"),
        output_format=values.get("output_format"),
        output_compression=_int(values, "output_compression"),
        moderation=values.get("moderation"),
        response_format=values.get("response_format"),
        stream=values.get("stream", "false").lower() == "true",
        input_fidelity=values.get("input_fidelity"),
        user=values.get("user"),
    )
    return _request(fields, tuple(images), mask, {}), ImagesLocator(len(images), mask is not None)


def _request(
    fields: ImageGenerationRequest,
    images: tuple[str, ...],
    mask: str | None,
    extra: dict[str, msgspec.Raw],
) -> ChatRequest:
    if not fields.prompt.strip():
        raise InvalidRequestError("prompt must not be empty.", param="prompt")
    if not fields.model:
        raise InvalidRequestError("model is required: name an image model.", param="model")
    if fields.n is not None and not 1 <= fields.n <= _MAX_N:
        raise InvalidRequestError(f"n must be between 1 and {_MAX_N}.", param="n")
    if fields.response_format not in (None, "b64_json"):
        raise InvalidRequestError(
            "response_format 'url' is not available: Aperture returns images as b64_json and "
            "keeps no store to serve them from. Ask for b64_json (or leave it out).",
            param="response_format",
        )
    if fields.stream:
        raise InvalidRequestError(
            "Streaming partial images is not supported; send the request without stream.",
            param="stream",
        )
    parts: list[Part] = [Text(fields.prompt)]
    parts += [Image(url) for url in images]
    if mask is not None:
        parts.append(Image(mask))
    task = ImageTask(
        prompt=fields.prompt,
        edit=bool(images),
        mask=mask is not None,
        size=fields.size,
        quality=fields.quality,
        background=fields.background,
        output_format=fields.output_format,
        output_compression=fields.output_compression,
        moderation=fields.moderation,
        input_fidelity=fields.input_fidelity,
    )
    return ChatRequest(
        model=fields.model,
        messages=(Message("user", tuple(parts) if images else fields.prompt),),
        n=fields.n,
        user=fields.user,
        extra=extra,
        image_task=task,
    )


def _parse_form(body: bytes, content_type: str) -> list[tuple[str, MimeMessage]]:
    # The stdlib's MIME parser reads a multipart body once its Content-Type is prepended; the
    # body's size is already bounded by server.max_body_bytes.
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not parsed.is_multipart():
        raise InvalidJsonError("The multipart body could not be read (no boundary?).")
    out = []
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise InvalidRequestError("A multipart part has no field name.", param="image")
        out.append((name, part))
    return out


def _data_uri(part: MimeMessage, param: str) -> str:
    """A file part as a data URI; the type it declares is checked against its bytes by intake."""
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes) or not data:
        raise InvalidRequestError(f"{param} is empty: send the image file.", param=param)
    mime = part.get_content_type()
    if not mime.startswith("image/"):
        mime = "image/png"  # declared as a generic file: intake sniffs the real type
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _text(part: MimeMessage, name: str) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError(f"{name} is not valid UTF-8.", param=name) from None


def _required(values: dict[str, Any], name: str) -> str:
    value = values.get(name)
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} is required.", param=name)
    return value


def _int(values: dict[str, Any], name: str) -> int | None:
    value = values.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidRequestError(f"{name} must be an integer.", param=name) from None


class _ImageData(msgspec.Struct, kw_only=True, omit_defaults=True):
    b64_json: str
    revised_prompt: str | None = None


class _InputDetails(msgspec.Struct, kw_only=True):
    image_tokens: int
    text_tokens: int


class _ImagesUsage(msgspec.Struct, kw_only=True):
    input_tokens: int
    input_tokens_details: _InputDetails
    output_tokens: int
    total_tokens: int


class _ImagesResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    created: int
    data: list[_ImageData]
    usage: _ImagesUsage | None = None


_encode = msgspec.json.Encoder().encode


def render_images(response: ChatResponse, model: str) -> bytes:
    """The ``ImagesResponse``: every image of every choice as ``b64_json``."""
    data = [
        _ImageData(b64_json=image.data)
        for choice in response.choices
        for image in choice.images or ()
    ]
    usage = response.usage
    rendered = (
        _ImagesUsage(
            input_tokens=usage.prompt_tokens,
            input_tokens_details=_InputDetails(
                image_tokens=usage.image_tokens or 0,
                text_tokens=usage.prompt_tokens - (usage.image_tokens or 0),
            ),
            output_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )
        if usage is not None
        else None
    )
    return _encode(_ImagesResponse(created=response.created, data=data, usage=rendered))
