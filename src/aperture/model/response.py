"""The canonical non-streaming answer."""

from __future__ import annotations

from typing import Literal

import msgspec

from aperture.model.chat import ToolCall

__all__ = ["ChatResponse", "Choice", "FinishReason", "Usage"]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    image_tokens: int | None = None
    cached_tokens: int | None = None
    """Prompt tokens read from the provider's prompt cache (part of ``prompt_tokens``)."""
    cache_creation_tokens: int | None = None
    """Prompt tokens written to the provider's prompt cache (part of ``prompt_tokens``)."""
    reasoning_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Choice(msgspec.Struct, frozen=True):
    index: int
    content: str | None
    tool_calls: tuple[ToolCall, ...] | None = None
    refusal: str | None = None
    finish_reason: FinishReason | None = None


class ChatResponse(msgspec.Struct, frozen=True):
    id: str
    model: str
    created: int
    choices: tuple[Choice, ...]
    usage: Usage | None = None
    system_fingerprint: str | None = None
