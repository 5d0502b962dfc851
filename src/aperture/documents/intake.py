"""Check a document before anything leaves: strict base64, the real type, the byte limit.

Pure and synchronous; the page count and the text layer are ``documents.pdf``'s (PDFium).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import pybase64

from aperture.errors import DocumentDecodeError, DocumentTooLargeError, ImageDecodeError
from aperture.media.datauri import parse_data_uri
from aperture.model import InlineDocument

__all__ = ["Decoded", "DocumentLimits", "decode_document", "describe"]

PDF = "application/pdf"
# The PDF spec lets the header sit anywhere in the first 1024 bytes; readers accept that.
_HEADER_WINDOW = 1024


class DocumentLimits(NamedTuple):
    max_bytes: int
    max_pages: int
    max_side_pt: float


class Decoded(NamedTuple):
    uri: str
    """The canonical data URI: ``data:application/pdf;base64,`` and the client's payload."""
    payload_offset: int
    data: bytes


def decode_document(uri: str, max_bytes: int, *, param: str) -> Decoded:
    """Decode a document data URI strictly and check it is a PDF within ``max_bytes``.

    The byte limit is checked on the encoded length before anything is decoded.

    Raises:
        DocumentDecodeError: not a data URI, invalid base64, or bytes that are not a PDF.
        DocumentTooLargeError: over ``max_bytes``.
    """
    try:
        declared, offset = parse_data_uri(uri, param=param)
    except ImageDecodeError as exc:
        # The data URI rules are the images' (media.datauri); the advice is the document's.
        raise DocumentDecodeError(
            "The document is not a base64 data URI: send data:application/pdf;base64,<data>.",
            param=param,
        ) from exc
    encoded = len(uri) - offset
    if encoded // 4 * 3 > max_bytes:
        raise DocumentTooLargeError(
            f"The document is about {encoded // 4 * 3} bytes; the limit is {max_bytes} bytes.",
            param=param,
        )
    payload = uri[offset:]
    if not payload:
        raise DocumentDecodeError("The data URI holds no data.", param=param)
    try:
        data: bytes = pybase64.b64decode(payload, validate=True)
    except (ValueError, TypeError) as exc:
        raise DocumentDecodeError(
            "The document data is not valid base64 (standard alphabet, padded, no whitespace).",
            param=param,
        ) from exc
    if len(data) > max_bytes:
        raise DocumentTooLargeError(
            f"The document is {len(data)} bytes; the limit is {max_bytes} bytes.", param=param
        )
    if b"%PDF-" not in data[:_HEADER_WINDOW]:
        said = f" (declared {declared})" if declared != PDF else ""
        raise DocumentDecodeError(
            f"The document is not a PDF{said}: it has no %PDF- header.", param=param
        )
    if declared != PDF or offset != len(PDF) + 13:
        prefix = f"data:{PDF};base64,"
        uri, offset = prefix + payload, len(prefix)
    return Decoded(uri, offset, data)


def describe(decoded: Decoded, pages: int) -> InlineDocument:
    """The descriptor the request carries and the audit keeps: never the bytes."""
    return InlineDocument(
        mime=PDF,
        size_bytes=len(decoded.data),
        pages=pages,
        sha256=hashlib.sha256(decoded.data).hexdigest(),
        payload_offset=decoded.payload_offset,
    )
