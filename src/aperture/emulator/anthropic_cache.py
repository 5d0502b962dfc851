"""Prompt caching as the Anthropic emulator reports it: ``cache_control`` checked, usage split.

The emulator holds no state, so it answers each request as if the one before it had been the
same conversation one step shorter: the prefix up to the last breakpoint but one is read
from the cache, the rest up to the last breakpoint is written to it (a request with one
breakpoint writes everything before it). As on Anthropic, a prefix shorter than
``MIN_CACHED_TOKENS`` is not cached, at most ``MAX_BREAKPOINTS`` blocks may carry
``cache_control``, and ``input_tokens`` counts only what is neither read nor written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aperture.emulator.anthropic_errors import extra_input, invalid, unknown_tag, wrong_type

__all__ = ["MAX_BREAKPOINTS", "MIN_CACHED_TOKENS", "cache_split", "read_cache_control"]

MIN_CACHED_TOKENS = 1024
"""Anthropic's minimum cacheable prompt for Sonnet and Opus models."""
MAX_BREAKPOINTS = 4
_TTLS = ("5m", "1h")


def read_cache_control(block: Mapping[str, object], path: str) -> bool:
    """Whether ``block`` sets a breakpoint; a malformed ``cache_control`` is a 400."""
    control = block.get("cache_control")
    if control is None:
        return False
    at = f"{path}.cache_control"
    if not isinstance(control, dict):
        raise wrong_type(at, "a valid dictionary")
    if control.get("type") != "ephemeral":
        raise unknown_tag(at, control.get("type"), ("ephemeral",))
    for key in control:
        if key not in ("type", "ttl"):
            raise extra_input(f"{at}.{key}")
    ttl = control.get("ttl")
    if ttl is not None and ttl not in _TTLS:
        raise wrong_type(f"{at}.ttl", "'5m' or '1h'")
    return True


def cache_split(breakpoints: Sequence[int]) -> tuple[int, int]:
    """``(written, read)`` tokens for breakpoints at these prompt-token positions."""
    if len(breakpoints) > MAX_BREAKPOINTS:
        raise invalid(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(breakpoints)}."
        )
    if not breakpoints:
        return 0, 0
    last = max(breakpoints)
    earlier = sorted(breakpoints)[-2] if len(breakpoints) > 1 else 0
    read = earlier if earlier >= MIN_CACHED_TOKENS else 0
    written = last - read if last >= MIN_CACHED_TOKENS else 0
    return written, read
