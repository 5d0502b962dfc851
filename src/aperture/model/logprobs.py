"""Token log probabilities: what a provider says about the tokens it chose, in one shape.

Carried on a choice (``Choice.logprobs``) and on a stream delta (``Delta.logprobs``), for the
answer's content; each dialect renders them its own way (Chat Completions'
``choices[].logprobs.content``, Responses' ``output_text.logprobs``).
"""

from __future__ import annotations

import msgspec

__all__ = ["TokenLogprob", "TopLogprob", "token_bytes"]


class TopLogprob(msgspec.Struct, frozen=True):
    """One of the most likely tokens at a position."""

    token: str
    logprob: float
    bytes: tuple[int, ...] | None = None


class TokenLogprob(msgspec.Struct, frozen=True):
    """The token the model chose at one position, and the likeliest alternatives there."""

    token: str
    logprob: float
    bytes: tuple[int, ...] | None = None
    """The token's UTF-8 bytes (a token may be part of a character); None when unknown."""
    top: tuple[TopLogprob, ...] = ()


def token_bytes(token: str) -> tuple[int, ...]:
    """The UTF-8 bytes of a token text, for providers that send the text only."""
    return tuple(token.encode("utf-8", "surrogatepass"))
