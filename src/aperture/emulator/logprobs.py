"""Deterministic token log probabilities for the emulators that return them when asked.

The answer's tokens are its stream pieces (a word with the space before it); each has a
logprob derived from its text and position, and ``top`` alternatives after it (the chosen
token first, as providers list it, then made-up tokens each less likely). The same answer
always carries the same numbers, so tests can assert them.
"""

from __future__ import annotations

from dataclasses import dataclass

from aperture.emulator.describe import short_hash, stream_pieces

__all__ = ["EmulatedToken", "token_logprobs"]


@dataclass(frozen=True, slots=True)
class EmulatedToken:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...]
    """The likeliest tokens at this position, with their logprobs, the chosen one first."""


def token_logprobs(text: str, top: int) -> list[EmulatedToken]:
    tokens = []
    for i, piece in enumerate(stream_pieces(text)):
        logprob = -round(int(short_hash(f"{i}:{piece}", 4), 16) % 2000 / 1000, 3)
        alternatives = [(piece, logprob)] + [
            (f"{piece.strip() or '_'}~{k}", round(logprob - 0.5 * k - 0.25, 3))
            for k in range(1, top)
        ]
        tokens.append(EmulatedToken(piece, logprob, tuple(alternatives[:top])))
    return tokens
