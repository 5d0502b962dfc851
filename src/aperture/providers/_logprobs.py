"""Token log probabilities in the shapes providers send them, read into the canonical one.

OpenAI's (``choices[].logprobs.content[]``: token, logprob, bytes, top_logprobs) is also
Mistral's and every OpenAI-compatible server's; Ollama sends the same token objects as a
bare list. Gemini's ``logprobsResult`` and Cohere's per-chunk lists are read by their
adapters into the same canonical tokens (``TokenLogprob``).
"""

from __future__ import annotations

import msgspec

from aperture.model import TokenLogprob, TopLogprob, token_bytes

__all__ = ["WireLogprobs", "WireToken", "from_tokens"]


class _WireTop(msgspec.Struct, kw_only=True):
    token: str = ""
    logprob: float = 0.0
    bytes: list[int] | None = None


class WireToken(msgspec.Struct, kw_only=True):
    """One token as OpenAI (and Mistral, vLLM, Ollama) send it."""

    token: str = ""
    logprob: float = 0.0
    bytes: list[int] | None = None
    top_logprobs: list[_WireTop] | None = None


class WireLogprobs(msgspec.Struct, kw_only=True):
    """A choice's ``logprobs`` object; only the content's tokens are relayed."""

    content: list[WireToken] | None = None


def from_tokens(tokens: list[WireToken] | None) -> tuple[TokenLogprob, ...] | None:
    """Canonical tokens; the bytes are the token's UTF-8 when the provider left them out."""
    if tokens is None:
        return None
    return tuple(
        TokenLogprob(
            token=t.token,
            logprob=t.logprob,
            bytes=tuple(t.bytes) if t.bytes is not None else token_bytes(t.token),
            top=tuple(
                TopLogprob(
                    a.token,
                    a.logprob,
                    tuple(a.bytes) if a.bytes is not None else token_bytes(a.token),
                )
                for a in t.top_logprobs or ()
            ),
        )
        for t in tokens
    )
