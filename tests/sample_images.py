"""Real images made with Pillow at known sizes, and the data URIs that carry them."""

from __future__ import annotations

import base64
import io

from PIL import Image


def png(width: int = 64, height: int = 48, color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(width: int = 64, height: int = 48, color: str = "blue") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def gif(width: int = 16, height: int = 16, frames: int = 1) -> bytes:
    buffer = io.BytesIO()
    images = [Image.new("RGB", (width, height), (i * 60 % 256, 0, 0)) for i in range(frames)]
    images[0].save(buffer, "GIF", save_all=frames > 1, append_images=images[1:], loop=0)
    return buffer.getvalue()


def webp(width: int = 20, height: int = 10, frames: int = 1) -> bytes:
    buffer = io.BytesIO()
    images = [Image.new("RGB", (width, height), (i * 60, 0, 0)) for i in range(frames)]
    images[0].save(buffer, "WEBP", save_all=frames > 1, append_images=images[1:])
    return buffer.getvalue()


def bmp(width: int = 8, height: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, "BMP")
    return buffer.getvalue()


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
