"""The canonical reasoning setting and the thoughts a model sends back.

Clients ask for reasoning in two vocabularies: an effort level (OpenAI's ``reasoning_effort``
and Responses' ``reasoning.effort``) or a token budget (Anthropic's ``thinking``). A request
keeps what the client said; providers read the one they need through ``budget`` and
``level``, so the mapping between the two lives here, once:

=========  ===============
effort     budget (tokens)
=========  ===============
minimal    1024
low        2048
medium     8192
high       16384
xhigh      32768
=========  ===============

A budget maps back to the highest effort whose budget it reaches, never below ``low``
(``minimal`` exists on few models): under 8192 is ``low``, under 16384 ``medium``, else
``high``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["EFFORT_BUDGETS", "Effort", "Reasoning", "Thought"]

Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]

EFFORT_BUDGETS: dict[str, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
}


class Reasoning(msgspec.Struct, frozen=True):
    """Whether and how much the model should think before it answers.

    ``enabled`` False is an explicit "do not think" (Anthropic's ``{"type": "disabled"}``,
    effort ``none``); adapters send it where the provider has a way to say it and drop it
    elsewhere. ``effort`` and ``budget_tokens`` are what the client sent (one of them).
    """

    enabled: bool = True
    effort: Effort | None = None
    budget_tokens: int | None = None
    show: bool | None = None
    """Whether the thoughts' text comes back (Anthropic's ``display``, Gemini's
    ``includeThoughts``); None: Anthropic's default, and shown where the gateway must
    choose (Gemini)."""

    @property
    def budget(self) -> int:
        """The thinking budget in tokens: the client's, or its effort's (``medium`` if none)."""
        if self.budget_tokens is not None:
            return self.budget_tokens
        return EFFORT_BUDGETS.get(self.effort or "medium", EFFORT_BUDGETS["medium"])

    @property
    def level(self) -> Effort:
        """The effort level: the client's, or the one its budget reaches."""
        if not self.enabled:
            return "none"
        if self.effort is not None:
            return self.effort
        budget = self.budget
        if budget < EFFORT_BUDGETS["medium"]:
            return "low"
        if budget < EFFORT_BUDGETS["high"]:
            return "medium"
        return "high"


class Thought(msgspec.Struct, frozen=True):
    """One piece of the model's reasoning, as the provider returned it.

    ``text`` is the thinking (or its summary); ``signature`` the provider's proof that it is
    unaltered (Anthropic's and Bedrock's ``signature``, Gemini's ``thoughtSignature``), which
    the provider wants back with the turn it belongs to; ``redacted`` the opaque payload of
    reasoning the provider encrypted (Anthropic's ``redacted_thinking``).
    """

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
