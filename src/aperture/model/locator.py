"""Where a canonical field came from in the client's request, for errors' ``param``."""

from __future__ import annotations

from typing import Protocol

__all__ = ["FieldLocator", "OpenAILocator"]


class FieldLocator(Protocol):
    """Maps canonical positions back to the client's field paths."""

    max_tokens: str
    """The name of the field that set ``max_tokens``."""
    logprobs: str
    """The field that asks for token logprobs (``logprobs``; Responses' ``include``)."""

    def image(self, message: int, part: int) -> str:
        """The path of the URL (or data) of the image at ``messages[message].content[part]``."""
        ...

    def part(self, message: int, part: int) -> str:
        """The path of the content part itself."""
        ...


class OpenAILocator:
    """Paths in the OpenAI shape: ``messages[0].content[1].image_url.url``."""

    logprobs = "logprobs"

    def __init__(self, max_tokens: str = "max_tokens") -> None:
        self.max_tokens = max_tokens

    def image(self, message: int, part: int) -> str:
        return f"messages[{message}].content[{part}].image_url.url"

    def part(self, message: int, part: int) -> str:
        return f"messages[{message}].content[{part}]"
