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


def heic(width: int = 16, height: int = 16) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "green").save(buffer, "HEIF")
    return buffer.getvalue()


def avif(width: int = 16, height: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "green").save(buffer, "AVIF")
    return buffer.getvalue()


def tiff(width: int = 16, height: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "green").save(buffer, "TIFF")
    return buffer.getvalue()


def jpeg_with_exif(width: int, height: int, *, orientation: int, gps: bool) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}
    buffer = io.BytesIO()
    image = Image.new("RGB", (width, height))
    image.paste((255, 0, 0), (0, 0, width // 2, height))
    image.save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def noise_jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((width, height), 80).convert("RGB").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size but holds almost nothing: a decompression bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
