"""The canonical non-streaming answer."""

from __future__ import annotations

from typing import Literal

import msgspec

from aperture.model.chat import ToolCall
from aperture.model.logprobs import TokenLogprob
from aperture.model.reasoning import Thought

__all__ = ["ChatResponse", "Choice", "FinishReason", "GeneratedImage", "Usage"]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class GeneratedImage(msgspec.Struct, frozen=True):
    """An image the model made: its MIME type and its bytes as (standard) base64.

    Kept as the base64 the provider sent, so relaying it to the client never decodes it.
    """

    mime: str
    data: str

    @property
    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{self.data}"


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    image_tokens: int | None = None
    cached_tokens: int | None = None
    """Prompt tokens read from the provider's prompt cache (part of ``prompt_tokens``)."""
    cache_creation_tokens: int | None = None
    """Prompt tokens written to the provider's prompt cache (part of ``prompt_tokens``)."""
    reasoning_tokens: int | None = None
    output_image_tokens: int | None = None
    """Of ``completion_tokens``, those the provider counts as image output (priced apart)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Choice(msgspec.Struct, frozen=True):
    index: int
    content: str | None
    tool_calls: tuple[ToolCall, ...] | None = None
    refusal: str | None = None
    finish_reason: FinishReason | None = None
    images: tuple[GeneratedImage, ...] | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    """The content tokens' log probabilities, when asked for and the provider gave them."""
    reasoning: tuple[Thought, ...] | None = None
    """The model's thoughts before its answer, in order, signatures kept."""


class ChatResponse(msgspec.Struct, frozen=True):
    id: str
    model: str
    created: int
    choices: tuple[Choice, ...]
    usage: Usage | None = None
    system_fingerprint: str | None = None
