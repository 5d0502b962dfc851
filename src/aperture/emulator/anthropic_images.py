"""Images in a Messages request as Anthropic checks them: sources, media types and sizes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from urllib.parse import urlsplit

from aperture.emulator.anthropic_errors import field_required, invalid, wrong_type
from aperture.emulator.describe import URL_IMAGE_TOKENS, SeenImage
from aperture.emulator.images import ImageRejected, Rejection, inspect_base64

__all__ = [
    "IMAGE_MEDIA_TYPES",
    "MAX_IMAGE_BASE64_CHARS",
    "MAX_IMAGE_SIDE",
    "base64_image",
    "image_tokens",
    "url_image",
]

IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_IMAGE_BASE64_CHARS = 5 * 1024 * 1024
"""Anthropic measures the 5 MB limit on the base64 string, not on the decoded bytes."""
MAX_IMAGE_SIDE = 8000
MEDIA_TYPES_TEXT = "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"


def _required(mapping: Mapping[str, object], key: str, parent: str | None = None) -> object:
    if key not in mapping:
        raise field_required(f"{parent}.{key}" if parent else key)
    return mapping[key]


def image_tokens(image: SeenImage) -> int:
    """Anthropic's patch formula, ⌈w/28⌉·⌈h/28⌉; a URL image, never fetched, costs a flat rate."""
    if image.is_url:
        return URL_IMAGE_TOKENS
    return math.ceil(image.width / 28) * math.ceil(image.height / 28)


def url_image(path: str, source: Mapping[str, object]) -> SeenImage:
    url = _required(source, "url", path)
    if not isinstance(url, str):
        raise wrong_type(f"{path}.url", "a valid string")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise wrong_type(f"{path}.url", "a valid URL")
    return SeenImage(detail="auto", host=parts.hostname)


def base64_image(path: str, source: Mapping[str, object]) -> SeenImage:
    declared = _required(source, "media_type", path)
    if declared not in IMAGE_MEDIA_TYPES:
        raise wrong_type(f"{path}.media_type", MEDIA_TYPES_TEXT)
    data = _required(source, "data", path)
    if not isinstance(data, str):
        raise wrong_type(f"{path}.data", "a valid string")
    if len(data) > MAX_IMAGE_BASE64_CHARS:
        raise invalid(
            f"{path}: image exceeds 5 MB maximum: {len(data)} bytes > "
            f"{MAX_IMAGE_BASE64_CHARS} bytes"
        )
    try:
        # Anthropic reads the first frame of an animated GIF instead of refusing it.
        image = inspect_base64(
            str(declared),
            data,
            detail="auto",
            accepted=frozenset(IMAGE_MEDIA_TYPES),
            allow_animated=True,
        )
    except ImageRejected as rejected:
        if rejected.reason is Rejection.MISMATCH:
            raise invalid(
                f"{path}.data: Image does not match the provided media type {declared}"
            ) from None
        raise invalid(f"{path}.data: Could not process image") from None
    if max(image.width, image.height) > MAX_IMAGE_SIDE:
        raise invalid(
            f"{path}.data: At least one of the image dimensions exceed max allowed size: "
            f"{MAX_IMAGE_SIDE} pixels"
        )
    return image
