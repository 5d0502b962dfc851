"""What a request costs: USD per million tokens by model, turned into integer micro-dollars.

The built-in table covers the common models by name prefix (list prices, USD per million
tokens), with each provider's prompt-cache rates (``_cached``, sources there);
``governance.prices`` entries come first and match a glob on the public name or on
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
    """USD per million tokens: input (text), output, input image tokens, output image tokens
    (the images a model makes; ``output`` when None), and prompt tokens read from or written
    to the provider's prompt cache (``input`` when None)."""

    input: float
    output: float
    image: float
    output_image: float | None = None
    cache_read: float | None = None
    cache_write: float | None = None

    def cost_micros(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        image_tokens: int,
        output_image_tokens: int = 0,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> int:
        """The cost in micro-dollars, rounded up: USD per million tokens is micro-dollars per
        token, so no float ever holds a sum of money. ``output_image_tokens`` are the part of
        ``completion_tokens`` that made images, at ``output_image``; the cache reads and
        writes are the part of ``prompt_tokens`` at the cache rates (taken from the text
        first, then from the images)."""
        prompt = max(prompt_tokens, 0)
        read = min(max(cache_read_tokens, 0), prompt)
        written = min(max(cache_write_tokens, 0), prompt - read)
        fresh = prompt - read - written
        image_tokens = min(max(image_tokens, 0), fresh)
        text_tokens = fresh - image_tokens
        made = min(max(output_image_tokens, 0), max(completion_tokens, 0))
        output_image = self.output if self.output_image is None else self.output_image
        exact = (
            text_tokens * self.input
            + image_tokens * self.image
            + read * (self.input if self.cache_read is None else self.cache_read)
            + written * (self.input if self.cache_write is None else self.cache_write)
            + (max(completion_tokens, 0) - made) * self.output
            + made * output_image
        )
        # Rounded to a nano-dollar first: 20 × 0.15 is 3.0000000000000004 in binary floats,
        # which is 3 micro-dollars, not 4.
        return math.ceil(round(exact, 3))


def _p(input: float, output: float) -> Price:
    return Price(input, output, input)


def _cached(price: Price, read: float, write: float = 1.0) -> Price:
    """``price`` with cache reads and writes at these multiples of its input rate."""
    return msgspec.structs.replace(
        price, cache_read=round(price.input * read, 6), cache_write=round(price.input * write, 6)
    )


# Prompt-cache rates, as multiples of the input rate (list prices, read 2026-12; not in
# providers.md):
# - Anthropic (docs.anthropic.com/en/docs/build-with-claude/prompt-caching#pricing): reads
#   0.1x, writes 1.25x (the 5-minute TTL; 1-hour writes cost 2x and are priced as 5-minute).
# - OpenAI (platform.openai.com/docs/pricing, "cached input"): reads 0.5x for GPT-4o and the
#   o-series, 0.25x for GPT-4.1, 0.1x for GPT-5; writes cost nothing extra.
# - Gemini 2.5 (ai.google.dev/gemini-api/docs/pricing, "context caching"): reads 0.1x;
#   implicit caching writes nothing extra (explicit caches' storage is not a token price).
# - DeepSeek (api-docs.deepseek.com/quick_start/pricing, "cache hit"): about 0.26x.
_ANTHROPIC_CACHE = (0.1, 1.25)


# Longest prefix wins, so "gpt-4o-mini" is not priced as "gpt-4o".
BUILTIN_PRICES: dict[str, Price] = {
    "gpt-4o": _cached(_p(2.50, 10.00), 0.5),
    "gpt-4o-mini": _cached(_p(0.15, 0.60), 0.5),
    "gpt-4.1": _cached(_p(2.00, 8.00), 0.25),
    "gpt-4.1-mini": _cached(_p(0.40, 1.60), 0.25),
    "gpt-4.1-nano": _cached(_p(0.10, 0.40), 0.25),
    "gpt-5": _cached(_p(1.25, 10.00), 0.1),
    "gpt-5-mini": _cached(_p(0.25, 2.00), 0.1),
    "gpt-5-nano": _cached(_p(0.05, 0.40), 0.1),
    "o3": _cached(_p(2.00, 8.00), 0.5),
    "o4-mini": _cached(_p(1.10, 4.40), 0.5),
    "claude-opus-4": _cached(_p(15.00, 75.00), *_ANTHROPIC_CACHE),
    "claude-opus-4-5": _cached(_p(5.00, 25.00), *_ANTHROPIC_CACHE),
    "claude-sonnet-4": _cached(_p(3.00, 15.00), *_ANTHROPIC_CACHE),
    "claude-3-7-sonnet": _cached(_p(3.00, 15.00), *_ANTHROPIC_CACHE),
    "claude-haiku-4-5": _cached(_p(1.00, 5.00), *_ANTHROPIC_CACHE),
    "claude-3-5-haiku": _cached(_p(0.80, 4.00), *_ANTHROPIC_CACHE),
    "gemini-2.5-pro": _cached(_p(1.25, 10.00), 0.1),
    "gemini-2.5-flash": _cached(_p(0.30, 2.50), 0.1),
    "gemini-2.5-flash-lite": _cached(_p(0.10, 0.40), 0.1),
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
    "deepseek-chat": _cached(_p(0.27, 1.10), 0.26),
    "deepseek-reasoner": _cached(_p(0.55, 2.19), 0.26),
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
                    entry.cache_read,
                    entry.cache_write,
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
