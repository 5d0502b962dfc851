"""Pillow, with HEIF support registered: imported inside the functions that decode, so that
the gateway starts without Pillow and loads it with the first image that needs pixels."""

from __future__ import annotations

import pillow_heif
from PIL import Image, ImageOps

__all__ = ["Image", "ImageOps"]

# Registering the HEIF opener adds HEIC/HEIF decoding to Pillow; it is opened, like every
# format, only through the allowlist in ``aperture.images.formats``.
pillow_heif.register_heif_opener()
