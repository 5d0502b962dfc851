"""The formats Pillow may open, by MIME type: an allowlist, readable without loading Pillow."""

from __future__ import annotations

__all__ = ["PILLOW_FORMATS"]

# Each format is opened only through this allowlist, never Pillow's whole plugin set.
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
