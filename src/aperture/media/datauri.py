"""RFC 2397 data URIs, parsed strictly: a MIME prefix and ``;base64`` are required."""

from __future__ import annotations

from typing import NamedTuple

from aperture.errors import ImageDecodeError, quote

__all__ = ["DataUri", "parse_data_uri"]

# Clients write image/jpg; no provider accepts it on the wire.
MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}


class DataUri(NamedTuple):
    mime: str
    """The declared media type, lower-cased and de-aliased; the bytes decide the real one."""
    payload_offset: int
    """Where the base64 payload starts in the URI string."""


def parse_data_uri(uri: str, *, param: str | None = None) -> DataUri:
    """Split ``data:<mime>[;params];base64,<payload>`` without copying the payload.

    Raises:
        ImageDecodeError: no ``data:`` scheme, no MIME prefix, or not base64-encoded.
    """
    if uri[:5].lower() != "data:":
        raise ImageDecodeError(
            "Image is not a data URI. Send data:image/<type>;base64,<data> "
            "(for example data:image/jpeg;base64,...).",
            param=param,
        )
    comma = uri.find(",", 5, 5 + 512)
    if comma < 0:
        raise ImageDecodeError("Malformed data URI: no comma before the data.", param=param)
    header = uri[5:comma].split(";")
    mime = header[0].strip().lower()
    if not mime:
        raise ImageDecodeError(
            "The data URI has no MIME prefix: send data:image/jpeg;base64,... or "
            "data:image/png;base64,...",
            param=param,
        )
    if "/" not in mime:
        raise ImageDecodeError(f"Malformed MIME type {quote(mime)} in the data URI.", param=param)
    if header[-1].strip().lower() != "base64":
        raise ImageDecodeError(
            "The data URI is not base64-encoded: add ;base64 before the comma.", param=param
        )
    return DataUri(MIME_ALIASES.get(mime, mime), comma + 1)
