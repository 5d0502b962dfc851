"""The pictures the emulated image models make: a PNG that says what was asked.

Deterministic (the same prompt draws the same bytes), so tests can check what the gateway
relayed against what the emulator drew, and people trying the offline demo see their own
words come back as a picture.
"""

from __future__ import annotations

import io
import textwrap

from PIL import Image, ImageDraw, ImageFont

__all__ = ["PICTURE_SIDE", "draw_picture"]

PICTURE_SIDE = 1024
"""The side of the square pictures, as Gemini's and OpenAI's image models answer by default."""

_MARGIN = 48
_FONT_SIZE = 40
_BACKGROUND = (24, 32, 56)
_INK = (250, 240, 210)
_MAX_LINES = 18


def draw_picture(
    prompt: str, *, width: int = PICTURE_SIDE, height: int = PICTURE_SIDE, format: str = "PNG"
) -> bytes:
    """A picture (PNG unless ``format`` says JPEG or WEBP) of ``width`` x ``height`` with
    ``prompt`` written on it, wrapped and framed."""
    picture = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=_FONT_SIZE)
    draw.rectangle(
        (_MARGIN // 2, _MARGIN // 2, width - _MARGIN // 2, height - _MARGIN // 2),
        outline=_INK,
        width=4,
    )
    columns = max(8, (width - 2 * _MARGIN) // (_FONT_SIZE // 2))
    lines = textwrap.wrap(" ".join(prompt.split()) or "(nothing asked)", columns)
    if len(lines) > _MAX_LINES:
        lines = [*lines[: _MAX_LINES - 1], lines[_MAX_LINES - 1] + " ..."]
    draw.multiline_text((_MARGIN, _MARGIN), "\n".join(lines), font=font, fill=_INK, spacing=12)
    out = io.BytesIO()
    picture.save(out, format=format)
    return out.getvalue()
