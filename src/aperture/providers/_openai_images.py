"""OpenAI's Images API from a canonical ``ImageTask``: ``/images/generations`` (JSON) and
``/images/edits`` (multipart, ``image[]`` files and an optional ``mask``), and the
``ImagesResponse`` back as a canonical answer whose one choice holds every image.

The images to edit are the message's image parts, already through intake (their bytes are
held as data URIs): each is decoded once, here, into its file part. ``response_format`` is
never sent: GPT image models always answer ``b64_json`` and refuse the field; ``dall-e-*``
models get ``b64_json`` asked for, since the gateway relays bytes, not URLs.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec
import pybase64

from aperture.errors import InvalidRequestError
from aperture.model import ChatRequest, Image, ImageTask, Target

__all__ = ["build_images_body", "images_path"]

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
_TASK_FIELDS = (
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "moderation",
)


def images_path(task: ImageTask) -> str:
    return "/images/edits" if task.edit else "/images/generations"


def build_images_body(request: ChatRequest, task: ImageTask, target: Target) -> tuple[bytes, str]:
    """The body and its Content-Type for ``task`` sent to ``target``."""
    fields: dict[str, Any] = {"model": target.upstream_model, "prompt": task.prompt}
    for name in _TASK_FIELDS:
        value = getattr(task, name)
        if value is not None:
            fields[name] = value
    if request.n is not None:
        fields["n"] = request.n
    if request.user is not None:
        fields["user"] = request.user
    if target.upstream_model.startswith("dall-e"):
        fields["response_format"] = "b64_json"
    if not task.edit:
        fields.update({k: msgspec.json.decode(v) for k, v in request.extra.items()})
        return msgspec.json.encode(fields), "application/json"
    if task.input_fidelity is not None:
        fields["input_fidelity"] = task.input_fidelity
    images = [part for _, _, part in request.images()]
    mask = images.pop() if task.mask else None
    return _multipart(fields, images, mask)


def _multipart(
    fields: dict[str, Any], images: list[Image], mask: Image | None
) -> tuple[bytes, str]:
    boundary = f"aperture-{secrets.token_hex(12)}"
    out = bytearray()
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += str(value).encode() + b"\r\n"
    files = [("image[]", image, f"image_{i}") for i, image in enumerate(images)]
    if mask is not None:
        files.append(("mask", mask, "mask"))
    for name, image, stem in files:
        if image.inline is None:
            raise InvalidRequestError(
                "Images to edit must be sent as files or data URIs.", param="image"
            )
        mime = image.inline.mime
        filename = f"{stem}.{_EXTENSIONS.get(mime, 'png')}"
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {mime}\r\n\r\n'
        ).encode()
        out += pybase64.b64decode(image.base64, validate=True) + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"
