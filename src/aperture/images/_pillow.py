"""Pillow set-up shared by intake and normalisation: the format allowlist and HEIF support."""

from __future__ import annotations

import pillow_heif

__all__ = ["PILLOW_FORMATS"]

# Registering the HEIF opener adds HEIC/HEIF decoding to Pillow; it is opened, like every
# format, only through an explicit allowlist, never Pillow's whole plugin set.
pillow_heif.register_heif_opener()

PILLOW_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
    "image/avif": "AVIF",
}
