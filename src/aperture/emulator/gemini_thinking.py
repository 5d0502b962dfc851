"""Thinking as the Gemini API judges and answers it (ai.google.dev/gemini-api/docs/thinking).

``generationConfig.thinkingConfig`` takes ``thinkingBudget`` (-1: dynamic; 0: off, where the
model allows it), ``includeThoughts`` and ``thinkingLevel``. Gemini 2.5 and 3 models think;
older ones refuse the config. (The real 2.5 and 3 models also think unasked; the emulated
one thinks only when ``thinkingConfig`` is sent, so usage without it stays the answer's.)
2.5 Pro cannot turn thinking off and takes 128 to 32768; 2.5 Flash takes 0 to 24576.

The emulated model thinks one deterministic sentence. With ``includeThoughts`` it comes back
as a ``thought: true`` part; the answer's first function call (else its last text part)
carries a ``thoughtSignature`` derived from that part, which a later turn must send back
unaltered: a signature that does not match its part is refused, Google's placeholder
(``skip_thought_signature_validator``) is accepted, as on Gemini 3.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from aperture.emulator.gemini_errors import GoogleError, invalid

__all__ = [
    "SKIP_SIGNATURE",
    "Thinking",
    "check_signature",
    "read_thinking",
    "sign_part",
    "thought_text",
]

SKIP_SIGNATURE = "skip_thought_signature_validator"
_LEVELS = frozenset({"THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH"})
_FIELDS = frozenset({"thinkingBudget", "includeThoughts", "thinkingLevel"})


@dataclass(frozen=True, slots=True)
class Thinking:
    """How the answer thinks: whether at all, and whether its thoughts are shown."""

    on: bool = False
    include_thoughts: bool = False


def thinks(model: str) -> bool:
    name = model.lower()
    return name.startswith(("gemini-2.5", "gemini-3")) and "-image" not in name


def read_thinking(config: object, model: str) -> Thinking:
    """The model's thinking for ``thinkingConfig`` (``config``, None when absent)."""
    if config is None:
        return Thinking()
    path = "generation_config.thinking_config"
    if not isinstance(config, dict):
        raise invalid(f"* GenerateContentRequest.{path}: must be an object\n")
    for key in config:
        if key not in _FIELDS:
            raise invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at '{path}'")
    if not thinks(model):
        raise invalid("Thinking is not supported for this model.")
    budget = config.get("thinkingBudget")
    if budget is not None:
        if not isinstance(budget, int) or isinstance(budget, bool):
            raise invalid(f"* GenerateContentRequest.{path}.thinking_budget: must be an integer\n")
        low, high = (128, 32768) if "pro" in model.lower() else (0, 24576)
        if budget == 0 and low > 0:
            raise invalid("Budget 0 is invalid. This model only works in thinking mode.")
        if budget != -1 and not low <= budget <= high:
            raise invalid(
                f"The thinking budget {budget} is invalid. Please choose a value between "
                f"{low} and {high}."
            )
    level = config.get("thinkingLevel")
    if level is not None and level not in _LEVELS:
        raise invalid(f"* GenerateContentRequest.{path}.thinking_level: invalid value {level!r}\n")
    include = config.get("includeThoughts", False)
    if not isinstance(include, bool):
        raise invalid(f"* GenerateContentRequest.{path}.include_thoughts: must be a boolean\n")
    return Thinking(on=budget != 0, include_thoughts=include)


def thought_text(asked: str) -> str:
    subject = " ".join(asked.split()[:12]) or "nothing in particular"
    return f"Thinking about: {subject}. I will describe what was sent."


def sign_part(part: Mapping[str, object]) -> str:
    """The signature of an answer part: base64 of a hash of its text or function call."""
    data = part.get("functionCall", part.get("text", ""))
    digest = hashlib.sha256(b"emulator-gemini\0" + msgspec.json.encode(data)).digest()
    return base64.b64encode(digest).decode()


def check_signature(part: Mapping[str, object], path: str) -> None:
    """A signature in history must be the one this emulator gave that part (or the skip)."""
    signature = part.get("thoughtSignature")
    if signature is None or signature == SKIP_SIGNATURE:
        return
    if signature != sign_part(part):
        raise GoogleError(
            400,
            f"* GenerateContentRequest.{path}.thought_signature: Thought signature is not valid.\n",
        )
