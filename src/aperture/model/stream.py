"""Canonical stream events: what provider stream parsers emit and dialects render."""

from __future__ import annotations

import msgspec

from aperture.model.logprobs import TokenLogprob
from aperture.model.reasoning import Thought
from aperture.model.response import FinishReason, GeneratedImage, Usage

__all__ = ["Delta", "Finish", "StreamEvent", "ToolCallDelta", "UsageReport"]


class ToolCallDelta(msgspec.Struct, frozen=True):
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


class Delta(msgspec.Struct, frozen=True, tag="delta"):
    """A piece of one choice's message; the first for a choice carries the role."""

    index: int = 0
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] | None = None
    images: tuple[GeneratedImage, ...] | None = None
    """Whole images the model made: providers send each in one piece, never in fragments."""
    logprobs: tuple[TokenLogprob, ...] | None = None
    """The log probabilities of the tokens of this piece of content."""
    thought: Thought | None = None
    """A piece of the model's reasoning: text to append to the current thought, or its
    signature (which ends that thought), or a whole redacted thought."""


class Finish(msgspec.Struct, frozen=True, tag="finish"):
    index: int
    reason: FinishReason


class UsageReport(msgspec.Struct, frozen=True, tag="usage"):
    usage: Usage


StreamEvent = Delta | Finish | UsageReport
