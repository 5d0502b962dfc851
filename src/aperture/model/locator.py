"""Where a canonical field came from in the client's request, for errors' ``param``."""

from __future__ import annotations

from typing import Protocol

__all__ = ["FieldLocator", "OpenAILocator", "ShiftedLocator"]


class FieldLocator(Protocol):
    """Maps canonical positions back to the client's field paths."""

    max_tokens: str
    """The name of the field that set ``max_tokens``."""
    reasoning: str
    """The path of the field that set ``reasoning``."""
    logprobs: str
    """The field that asks for token logprobs (``logprobs``; Responses' ``include``)."""
    image_output: str
    """The field that asks for image output (``modalities``; Responses' ``tools[i]``)."""

    def image(self, message: int, part: int) -> str:
        """The path of the URL (or data) of the image at ``messages[message].content[part]``."""
        ...

    def part(self, message: int, part: int) -> str:
        """The path of the content part itself."""
        ...


class OpenAILocator:
    """Paths in the OpenAI shape: ``messages[0].content[1].image_url.url``."""

    reasoning = "reasoning_effort"
    logprobs = "logprobs"
    image_output = "modalities"

    def __init__(self, max_tokens: str = "max_tokens") -> None:
        self.max_tokens = max_tokens

    def image(self, message: int, part: int) -> str:
        return f"messages[{message}].content[{part}].image_url.url"

    def part(self, message: int, part: int) -> str:
        return f"messages[{message}].content[{part}]"


class ShiftedLocator:
    """``inner``'s paths, after ``count`` messages were inserted at ``start`` (a stored
    conversation the request continues): those are named by ``label``."""

    def __init__(self, inner: FieldLocator, start: int, count: int, label: str) -> None:
        self.max_tokens = inner.max_tokens
        self.reasoning = inner.reasoning
        self.logprobs = inner.logprobs
        self.image_output = inner.image_output
        self._inner, self._start, self._count, self._label = inner, start, count, label

    def image(self, message: int, part: int) -> str:
        if message < self._start:
            return self._inner.image(message, part)
        if message < self._start + self._count:
            return self._label
        return self._inner.image(message - self._count, part)

    def part(self, message: int, part: int) -> str:
        if message < self._start:
            return self._inner.part(message, part)
        if message < self._start + self._count:
            return self._label
        return self._inner.part(message - self._count, part)
