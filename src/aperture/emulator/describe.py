"""What an emulated provider saw, the deterministic answer it gives about it, and token counts.

Provider-neutral: each emulated provider validates its own wire format into a ``Seen`` and
answers with the text built here, so gateway tests can assert the same sentence whichever
provider served the request.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

import msgspec

__all__ = [
    "URL_IMAGE_TOKENS",
    "Seen",
    "SeenImage",
    "describe",
    "describe_json",
    "one_line",
    "prompt_tokens",
    "short_hash",
    "stream_pieces",
    "tile_tokens",
    "truncate_words",
    "word_count",
]

# A URL image is never fetched, so its size is unknown: charge what a low-detail image costs.
URL_IMAGE_TOKENS = 85

_PIECE = re.compile(r"\s*\S+")


@dataclass(frozen=True, slots=True)
class SeenImage:
    """One image as the provider received it: inline bytes (mime and size) or a URL (host)."""

    detail: str
    mime: str | None = None
    width: int = 0
    height: int = 0
    host: str | None = None

    @property
    def is_url(self) -> bool:
        return self.host is not None

    def label(self) -> str:
        if self.host is not None:
            return f"url image from {self.host} detail={self.detail}"
        return f"{self.mime} {self.width}x{self.height} detail={self.detail}"

    def tokens(self) -> int:
        if self.host is not None:
            return URL_IMAGE_TOKENS
        return tile_tokens(self.width, self.height, self.detail)


@dataclass(frozen=True, slots=True)
class Seen:
    """Everything the answer and the usage depend on."""

    images: tuple[SeenImage, ...]
    asked: str
    """The text parts of the last user message, joined with a space."""
    system: str | None
    """The system/developer instructions joined with a space; None if there were none."""
    text_chars: int
    """Characters of every text part and string content, for the prompt token estimate."""


def one_line(text: str) -> str:
    """Collapse every whitespace run to one space, so quoted text cannot break the line."""
    return " ".join(text.split())


def describe(seen: Seen) -> str:
    """The one-line answer: ``Saw 2 images: #1 ..., #2 .... Asked: "..."[ System: "..."]``."""
    count = len(seen.images)
    if count == 0:
        head = "Saw no images."
    else:
        noun = "image" if count == 1 else "images"
        items = ", ".join(f"#{i} {image.label()}" for i, image in enumerate(seen.images, 1))
        head = f"Saw {count} {noun}: {items}."
    text = f'{head} Asked: "{one_line(seen.asked)}"'
    if seen.system is not None:
        text += f' System: "{one_line(seen.system)}"'
    return text


def describe_json(seen: Seen) -> str:
    """The JSON-mode answer: a compact ``{"images":N,"asked":"..."}`` object."""
    answer = {"images": len(seen.images), "asked": one_line(seen.asked)}
    return msgspec.json.encode(answer).decode()


def tile_tokens(width: int, height: int, detail: str, *, base: int = 85, tile: int = 170) -> int:
    """OpenAI's tile formula (gpt-4o rates by default): 1024x1024 high is 765, low is 85."""
    if detail == "low":
        return base
    w, h = float(width), float(height)
    scale = min(1.0, 2048 / max(w, h, 1.0))
    w, h = w * scale, h * scale
    scale = min(1.0, 768 / max(min(w, h), 1.0))
    w, h = w * scale, h * scale
    return base + tile * math.ceil(w / 512) * math.ceil(h / 512)


def prompt_tokens(seen: Seen) -> int:
    """A quarter token per character of text, plus each image's cost."""
    return math.ceil(seen.text_chars / 4) + sum(image.tokens() for image in seen.images)


def word_count(text: str) -> int:
    return len(text.split())


def truncate_words(text: str, limit: int | None) -> tuple[str, bool]:
    """The first ``limit`` words, and whether anything was cut (a ``length`` finish)."""
    if limit is None:
        return text, False
    words = text.split()
    if len(words) <= limit:
        return text, False
    return " ".join(words[:limit]), True


def stream_pieces(text: str) -> list[str]:
    """One piece per word, each keeping the whitespace before it, so the pieces re-join exactly."""
    pieces = _PIECE.findall(text)
    tail = text[sum(len(piece) for piece in pieces) :]
    if tail:
        pieces.append(tail)
    return pieces


def short_hash(text: str | bytes, length: int = 24) -> str:
    """A stable hex identifier derived from the input (ids must repeat across runs)."""
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:length]
