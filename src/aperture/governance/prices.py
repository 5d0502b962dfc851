"""What a request costs: USD per million tokens by model, turned into integer micro-dollars.

The built-in table covers the common models by name prefix (list prices, USD per million
tokens); ``governance.prices`` entries come first and match a glob on the public name or on
the upstream model. A model with no price costs nothing in money (its tokens still count
against token budgets), which ``PriceTable.unpriced`` lets the start-up log point out.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Sequence

import msgspec

from aperture.settings.governance import PriceSettings

__all__ = ["BUILTIN_PRICES", "Price", "PriceTable"]


class Price(msgspec.Struct, frozen=True):
    """USD per million tokens: input (text), output, input image tokens, and output image
    tokens (the images a model makes; ``output`` when None)."""

    input: float
    output: float
    image: float
    output_image: float | None = None

    def cost_micros(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        image_tokens: int,
        output_image_tokens: int = 0,
    ) -> int:
        """The cost in micro-dollars, rounded up: USD per million tokens is micro-dollars per
        token, so no float ever holds a sum of money. ``output_image_tokens`` are the part of
        ``completion_tokens`` that made images, at ``output_image``."""
        image_tokens = min(max(image_tokens, 0), max(prompt_tokens, 0))
        text_tokens = max(prompt_tokens - image_tokens, 0)
        made = min(max(output_image_tokens, 0), max(completion_tokens, 0))
        output_image = self.output if self.output_image is None else self.output_image
        exact = (
            text_tokens * self.input
            + image_tokens * self.image
            + (max(completion_tokens, 0) - made) * self.output
            + made * output_image
        )
        # Rounded to a nano-dollar first: 20 × 0.15 is 3.0000000000000004 in binary floats,
        # which is 3 micro-dollars, not 4.
        return math.ceil(round(exact, 3))


def _p(input: float, output: float) -> Price:
    return Price(input, output, input)


# Longest prefix wins, so "gpt-4o-mini" is not priced as "gpt-4o".
BUILTIN_PRICES: dict[str, Price] = {
    "gpt-4o": _p(2.50, 10.00),
    "gpt-4o-mini": _p(0.15, 0.60),
    "gpt-4.1": _p(2.00, 8.00),
    "gpt-4.1-mini": _p(0.40, 1.60),
    "gpt-4.1-nano": _p(0.10, 0.40),
    "gpt-5": _p(1.25, 10.00),
    "gpt-5-mini": _p(0.25, 2.00),
    "gpt-5-nano": _p(0.05, 0.40),
    "o3": _p(2.00, 8.00),
    "o4-mini": _p(1.10, 4.40),
    "claude-opus-4": _p(15.00, 75.00),
    "claude-opus-4-5": _p(5.00, 25.00),
    "claude-sonnet-4": _p(3.00, 15.00),
    "claude-3-7-sonnet": _p(3.00, 15.00),
    "claude-haiku-4-5": _p(1.00, 5.00),
    "claude-3-5-haiku": _p(0.80, 4.00),
    "gemini-2.5-pro": _p(1.25, 10.00),
    "gemini-2.5-flash": _p(0.30, 2.50),
    "gemini-2.5-flash-lite": _p(0.10, 0.40),
    "gemini-2.0-flash": _p(0.10, 0.40),
    "mistral-large": _p(2.00, 6.00),
    "mistral-medium": _p(0.40, 2.00),
    "mistral-small": _p(0.10, 0.30),
    "pixtral-large": _p(2.00, 6.00),
    "pixtral-12b": _p(0.15, 0.15),
    "command-a": _p(2.50, 10.00),
    "command-r-plus": _p(2.50, 10.00),
    "command-r": _p(0.15, 0.60),
    "grok-4": _p(3.00, 15.00),
    "deepseek-chat": _p(0.27, 1.10),
    "deepseek-reasoner": _p(0.55, 2.19),
    # Image models: input text, output text, input image, output image (list prices).
    "gpt-image-1": Price(5.00, 10.00, 10.00, 40.00),
    "gpt-image-1-mini": Price(2.00, 8.00, 2.50, 8.00),
    "gemini-2.5-flash-image": Price(0.30, 2.50, 0.30, 30.00),
}

# Bedrock ids carry a vendor prefix and a version suffix around the model's own name.
_VENDOR = re.compile(r"^(?:[a-z]{2}\.)?(?:anthropic|amazon|meta|mistral|cohere)\.")


class PriceTable:
    """Looks up the price of a (public name, upstream model) pair, memoised per pair."""

    def __init__(self, overrides: Sequence[PriceSettings] = ()) -> None:
        self._overrides = tuple(
            (
                entry.model,
                Price(
                    entry.input,
                    entry.output,
                    entry.input if entry.image is None else entry.image,
                    entry.output_image,
                ),
            )
            for entry in overrides
        )
        self._prefixes = sorted(BUILTIN_PRICES, key=len, reverse=True)
        self._memo: dict[tuple[str, str], Price | None] = {}

    def price(self, model: str, upstream_model: str | None = None) -> Price | None:
        names = (model,) if upstream_model in (None, model) else (model, upstream_model or "")
        memo_key = (model, upstream_model or "")
        if memo_key in self._memo:
            return self._memo[memo_key]
        found = self._lookup(names)
        if len(self._memo) < 10_000:  # model names come from config and routes: few
            self._memo[memo_key] = found
        return found

    def _lookup(self, names: tuple[str, ...]) -> Price | None:
        for pattern, price in self._overrides:
            if any(fnmatch.fnmatchcase(name, pattern) for name in names):
                return price
        for name in names:
            bare = _VENDOR.sub("", name.rsplit("/", 1)[-1])
            for prefix in self._prefixes:
                if bare.startswith(prefix):
                    return BUILTIN_PRICES[prefix]
        return None

    def unpriced(self, names: Sequence[tuple[str, str]]) -> list[str]:
        """The public names among ``(public, upstream)`` pairs that have no price."""
        return [public for public, upstream in names if self.price(public, upstream) is None]
