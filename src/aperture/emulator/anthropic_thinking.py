"""Extended thinking as Anthropic's Messages API judges and answers it.

What is checked (each as the real API words its 400): the ``thinking`` object's shape; a
budget of at least 1024 tokens and below ``max_tokens``; ``temperature`` other than 1,
``top_p`` below 0.95 and ``top_k`` refused while thinking; ``tool_choice`` forcing a tool
refused while thinking; models before Claude 3.7 refused; a thinking block sent back must
carry the signature this emulator gave it; with thinking on, the final assistant turn that
called tools must start with its thinking.

The answer's thinking is deterministic: one sentence naming what was asked, signed with
``signature_for`` (a hash of the text, so a changed thought fails the check). A prompt
holding Anthropic's documented test string gets a ``redacted_thinking`` block instead.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from aperture.emulator.anthropic_errors import (
    AnthropicError,
    field_required,
    invalid,
    unknown_tag,
    wrong_type,
)

__all__ = [
    "MIN_BUDGET",
    "REDACTED_TRIGGER",
    "ThinkingConfig",
    "check_sampling",
    "check_signed",
    "read_thinking",
    "redacted_data",
    "signature_for",
    "thought_text",
]

MIN_BUDGET = 1024
REDACTED_TRIGGER = (
    "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_46C9A13E193C177646C7398A98432ECCCE4C1253"
)
"""Anthropic's documented string that makes the model's thinking come back redacted."""
_KINDS = ("enabled", "disabled", "adaptive")
# Models before Claude 3.7 Sonnet have no extended thinking.
_UNTHINKING = ("claude-2", "claude-instant", "claude-3-5", "claude-3-haiku", "claude-3-opus")


@dataclass(frozen=True, slots=True)
class ThinkingConfig:
    """Thinking that is on: its budget (None for ``adaptive``), and whether its text is
    shown (``display: omitted`` returns the signature with empty thinking)."""

    budget_tokens: int | None
    shown: bool = True


def read_thinking(
    data: Mapping[str, object], model: str, max_tokens: int | None
) -> ThinkingConfig | None:
    """The request's thinking, None when off.

    ``max_tokens`` is None on ``count_tokens``, which has none to compare the budget with.
    """
    value = data.get("thinking")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise wrong_type("thinking", "a valid dictionary")
    kind = value.get("type")
    if kind not in _KINDS:
        raise unknown_tag("thinking", kind, _KINDS)
    if kind == "disabled":
        return None
    if model.startswith(_UNTHINKING):
        raise invalid(f"'{model}' does not support thinking.")
    display = value.get("display")
    if display not in (None, "summarized", "omitted"):
        raise wrong_type(f"thinking.{kind}.display", "'summarized' or 'omitted'")
    shown = display != "omitted"
    if kind == "adaptive":
        return ThinkingConfig(None, shown)
    if "budget_tokens" not in value:
        raise field_required("thinking.enabled.budget_tokens")
    budget = value["budget_tokens"]
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise wrong_type("thinking.enabled.budget_tokens", "a valid integer")
    if budget < MIN_BUDGET:
        raise wrong_type("thinking.enabled.budget_tokens", f"greater than or equal to {MIN_BUDGET}")
    if max_tokens is not None and budget >= max_tokens:
        raise invalid(
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
            "documentation at https://docs.claude.com/en/docs/build-with-claude/"
            "extended-thinking#max-tokens-and-context-window-size"
        )
    return ThinkingConfig(budget, shown)


def check_sampling(data: Mapping[str, object], forced_tool: bool) -> None:
    """What thinking cannot be combined with."""
    temperature = data.get("temperature")
    if temperature is not None and temperature != 1:
        raise invalid(
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our "
            "documentation at https://docs.claude.com/en/docs/build-with-claude/"
            "extended-thinking#feature-compatibility"
        )
    top_p = data.get("top_p")
    if isinstance(top_p, int | float) and top_p < 0.95:
        raise invalid(
            "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled."
        )
    if data.get("top_k") is not None:
        raise invalid("`top_k` must be unset when thinking is enabled.")
    if forced_tool:
        raise invalid("Thinking may not be enabled when tool_choice forces tool use.")


def signature_for(thinking: str) -> str:
    """The emulator's signature of a thought: base64 of a hash of its text."""
    digest = hashlib.sha256(b"emulator-thinking\0" + thinking.encode()).digest()
    return base64.b64encode(digest * 2).decode()


def redacted_data(asked: str) -> str:
    """The opaque payload of a redacted thought (base64, as Anthropic's looks)."""
    digest = hashlib.sha256(b"emulator-redacted\0" + asked.encode()).digest()
    return base64.b64encode(b"EmUl" + digest * 3).decode()


def check_signed(path: str, kind: str, block: Mapping[str, object]) -> None:
    """A thinking block sent back must be the one this emulator signed, unaltered."""
    if kind == "redacted_thinking":
        data = block.get("data")
        if not isinstance(data, str):
            raise (
                field_required(f"{path}.data")
                if data is None
                else wrong_type(f"{path}.data", "a valid string")
            )
        return
    for key in ("thinking", "signature"):
        if key not in block:
            raise field_required(f"{path}.{key}")
        if not isinstance(block[key], str):
            raise wrong_type(f"{path}.{key}", "a valid string")
    if block["signature"] != signature_for(str(block["thinking"])):
        raise invalid(f"{path}: Invalid `signature` in `thinking` block")


def thought_text(asked: str) -> str:
    """The emulated model's deterministic thinking before it answers."""
    subject = " ".join(asked.split()[:12]) or "nothing in particular"
    return f"The user asks about: {subject}. I will look at what was sent and describe it."


def tool_turn_error(index: int) -> AnthropicError:
    return invalid(
        f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
        "`tool_use`. When `thinking` is enabled, a final `assistant` message must start with a "
        "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). "
        "We recommend you include thinking blocks from previous turns. To avoid this "
        "requirement, disable `thinking`. Please consult our documentation at "
        "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
    )
