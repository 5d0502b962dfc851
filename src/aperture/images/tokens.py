"""Estimated input tokens one image costs, per provider family: pure functions, no I/O.

Estimates are computed on the image as it will be sent (width and height after any resize the
gateway did) and model the resize the provider itself applies before counting. They serve
budgets and limits; the provider's reported usage stays the truth. Sources, all sections of
/work/shared/reference/providers.md:

- ``openai-tile``, ``openai-patch``: §3.3 (``detail``), §3.4 (models, tables, worked examples)
  and the reference code in §15.
- ``anthropic``, ``bedrock-claude``: §4.3 (the newer doc's 28 px patch formula, the resize
  thresholds and max-size table), §6.3 and §7 (Bedrock Claude counts like Anthropic) and the
  note closing §15 (practical threshold ~1,600 tokens, not 1.15 MP).
- ``gemini``, ``gemini-3``: §5.3 and §5.4.
- ``mistral``, ``pixtral``: §9. ``cohere``: §10. ``deepseek``, ``qwen``: §13.
- ``unknown``: the OpenAI tile formula with gpt-4o's figures (§3.4), a conservative default.

Which family a target's images fall in follows its kind's spec (``ProviderSpec.image_tokens``)
and the model; a kind without a spec is an error, never ``unknown``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, NamedTuple, TypeVar

from aperture.providers.registry import spec_for
from aperture.providers.spec import TokenRule

__all__ = ["TokenFamily", "estimate_image_tokens", "family_by_rule", "token_family"]

TokenFamily = Literal[
    "openai-tile", "openai-patch", "anthropic", "gemini", "gemini-3", "bedrock-claude",
    "mistral", "pixtral", "cohere", "qwen", "deepseek", "unknown",
]  # fmt: skip
_Detail = Literal["auto", "low", "high"]
_T = TypeVar("_T")
_EPS = 1e-9  # absorbs float error so an exact multiple (768/1500*2000 == 1024) is not one more


class _Tile(NamedTuple):
    base: int
    tile: int


class _Patch(NamedTuple):
    """A patch model: multiplier, then (patch budget, max side) for high and for auto.

    ``None`` as a limit means the provider does not resize at all (GPT-5.6 ``auto``, §3.4).
    """

    multiplier: float
    high: tuple[int, int] | None
    auto: tuple[int, int] | None


class _Claude(NamedTuple):
    max_side: int
    max_tokens: int


# OpenAI tile models, §3.4 table; the longest matching prefix wins (gpt-4o-mini before gpt-4o).
_TILE_DEFAULT = _Tile(85, 170)
_TILE: Mapping[str, _Tile] = MappingProxyType({
    "gpt-5": _Tile(70, 140),  # also gpt-5-chat-latest
    "gpt-4o": _TILE_DEFAULT,
    "chatgpt-4o": _TILE_DEFAULT,
    "gpt-4.1": _TILE_DEFAULT,
    "gpt-4.5": _TILE_DEFAULT,
    "gpt-4o-mini": _Tile(2833, 5667),
    "o1": _Tile(75, 150),  # also o1-pro
    "o3": _Tile(75, 150),
    "computer-use-preview": _Tile(65, 129),
})  # fmt: skip

# OpenAI patch models, §3.4: 1,536 patches / 2048 px for the mini/nano family (and, as the
# documented default, for patch models without their own figures: gpt-5.2, codex minis);
# gpt-5.4 and later: high 2,500 / 2048 px; on gpt-5.5 "auto" means "original" (10,000 / 6000 px,
# §3.3), on GPT-5.6 "original" does not resize. No multiplier documented means 1.0.
_SMALL = (1536, 2048)
_LARGE = (2500, 2048)
_PATCH_LOW = (256, 512)  # detail "low": "a low-resolution 512px x 512px version" (§3.3)
_PATCH_DEFAULT = _Patch(1.0, _SMALL, _SMALL)
_PATCH: Mapping[str, _Patch] = MappingProxyType({
    "gpt-5-mini": _Patch(1.62, _SMALL, _SMALL),
    "gpt-5-nano": _Patch(2.46, _SMALL, _SMALL),
    "gpt-4.1-mini": _Patch(1.62, _SMALL, _SMALL),
    "gpt-4.1-nano": _Patch(2.46, _SMALL, _SMALL),
    "o4-mini": _Patch(1.72, _SMALL, _SMALL),
    "gpt-5.4-mini": _Patch(1.62, _SMALL, _SMALL),
    "gpt-5.4-nano": _Patch(2.46, _SMALL, _SMALL),
    "gpt-5.4": _Patch(1.0, _LARGE, _LARGE),
    "gpt-5.5": _Patch(1.0, _LARGE, (10_000, 6000)),
    "gpt-5.6": _Patch(1.0, _LARGE, None),
})  # fmt: skip

# Which OpenAI models count in tiles and which in patches (§3.4); longest prefix wins.
_OPENAI_FAMILY: Mapping[str, TokenFamily] = MappingProxyType({
    **dict.fromkeys(_TILE, "openai-tile"),  # gpt-5 also catches gpt-5.1 / 5.3: undocumented
    **dict.fromkeys((*_PATCH, "gpt-5.2", "codex-mini"), "openai-patch"),
})  # fmt: skip

# Anthropic, §4.3: long edge above 1568 px or more than ~1,600 tokens is scaled down. Claude
# Opus 4.7 takes 2576 px / ~3.75 MP (secondary sources, UNVERIFIED): kept because the larger
# figure over- rather than under-estimates. Matched as a substring, so Bedrock ids match too.
_CLAUDE_DEFAULT = _Claude(1568, 1600)
_CLAUDE: Mapping[str, _Claude] = MappingProxyType(
    {"claude-opus-4-7": _Claude(2576, 3_750_000 // 784)}
)

# Mistral, §9: (box the provider downscales to, pixels per token): max 3025 and 4096 tokens.
_MISTRAL: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"mistral": (1540, 784), "pixtral": (1024, 256)}
)
_GEMINI3: Mapping[_Detail, int] = MappingProxyType({"low": 280, "auto": 1120, "high": 1120})


def estimate_image_tokens(
    family: TokenFamily,
    width: int,
    height: int,
    detail: Literal["auto", "low", "high"] | None = None,
    *,
    model: str = "",
) -> int:
    """Estimated input tokens of one ``width`` × ``height`` image sent to ``family``.

    ``model`` (the upstream model name) selects per-model figures where the docs give them.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image dimensions must be positive, got {width}x{height}")
    w, h = width, height
    match family:
        case "openai-tile":
            return _openai_tile(w, h, detail, model)
        case "openai-patch":
            return _openai_patch(w, h, detail, model)
        case "anthropic" | "bedrock-claude":  # same model, same formula (§6.3, §7)
            return _anthropic(w, h, model)
        case "gemini":
            # §15's reference code, an approximation of the unpublished 2.x cropping rule.
            # detail is not mapped to media_resolution before Gemini 3: the tile count stands.
            return 258 if w <= 384 and h <= 384 else 258 * _ceil(w / 768) * _ceil(h / 768)
        case "gemini-3":
            # media_resolution is a per-image maximum (§5.3). "auto"/absent leaves it unset
            # (§5.4), and the provider's default for images is HIGH, 1120 — not MEDIUM's 560.
            return _GEMINI3[detail or "auto"]
        case "mistral" | "pixtral":
            box, pixels_per_token = _MISTRAL[family]
            return _area(w, h, box=box, pixels_per_token=pixels_per_token)
        case "cohere":
            return _cohere(w, h, detail)
        case "qwen":
            return _qwen(w, h, model)
        case "deepseek":
            # Every image is rescaled to ≈800×800 px of area (small ones up, large ones down)
            # with "an upper bound of 384 tokens per image": the bound is the estimate.
            return 384
        case "unknown":
            # No published rule: the OpenAI tile formula with gpt-4o's figures (85 + 170 per
            # 512 px tile), a deliberately conservative default.
            return _openai_tile(w, h, detail, "")


def token_family(provider_kind: str, upstream_model: str) -> TokenFamily:
    """The token family of ``upstream_model`` served by a provider of kind ``provider_kind``.

    Raises:
        LookupError: no such kind.
    """
    return family_by_rule(spec_for(provider_kind.lower()).image_tokens, upstream_model)


def family_by_rule(rule: TokenRule, upstream_model: str) -> TokenFamily:
    """The token family of ``upstream_model`` on a kind whose spec counts images by ``rule``."""
    name = _bare(upstream_model)
    match rule:
        case "anthropic" | "cohere" | "qwen" | "deepseek":
            return rule
        case "bedrock":  # anthropic.claude-…, us./eu./global.anthropic.claude-…, ARNs of both
            return "bedrock-claude" if "anthropic.claude" in upstream_model.lower() else "unknown"
        case "gemini":
            return "gemini-3" if name.startswith("gemini-3") else "gemini"
        case "mistral":
            return "pixtral" if name.startswith("pixtral") else "mistral"
        case "openai":
            if _is_qwen_vl(name):  # a Qwen-VL deployment behind an OpenAI-shaped endpoint
                return "qwen"
            if "codex-mini" in name:  # codex-mini-latest, gpt-5.1-codex-mini (patch, §3.4)
                return "openai-patch"
            return _by_prefix(_OPENAI_FAMILY, name, "unknown")
        case "unpublished":
            # Qwen-VL served by vLLM, Ollama or another OpenAI-compatible host
            return "qwen" if _is_qwen_vl(name) else "unknown"


def _is_qwen_vl(name: str) -> bool:
    return ("qwen" in name and "vl" in name) or name.startswith("qvq")


def _openai_tile(w: int, h: int, detail: _Detail | None, model: str) -> int:
    p = _by_prefix(_TILE, _bare(model), _TILE_DEFAULT)
    if detail == "low":
        return p.base
    # "auto" and no detail are costed as "high": the provider chooses per image, and high is
    # the upper bound a budget must allow for.
    s = min(1.0, 2048 / max(w, h))  # fit 2048×2048
    fw, fh = w * s, h * s
    s = min(1.0, 768 / min(fw, fh))  # shortest side 768
    return p.base + p.tile * _ceil(fw * s / 512) * _ceil(fh * s / 512)


def _openai_patch(w: int, h: int, detail: _Detail | None, model: str) -> int:
    p = _by_prefix(_PATCH, _bare(model), _PATCH_DEFAULT)
    # "low" follows the documented 512×512 version (§3.3); a community report that low does not
    # change billing on mini/nano models is UNVERIFIED. "auto" and no detail are the default.
    limit = _PATCH_LOW if detail == "low" else p.high if detail == "high" else p.auto
    fw, fh = float(w), float(h)
    if limit is not None:
        budget, max_side = limit
        s = min(1.0, max_side / max(w, h))
        fw, fh = fw * s, fh * s
        if _ceil(fw / 32) * _ceil(fh / 32) > budget:  # §3.4 step B, as in §15
            s = math.sqrt(32 * 32 * budget / (fw * fh))
            s *= min(_floor(fw * s / 32) / (fw * s / 32), _floor(fh * s / 32) / (fh * s / 32))
            fw, fh = max(1, int(fw * s)), max(1, int(fh * s))
    return math.ceil(_ceil(fw / 32) * _ceil(fh / 32) * p.multiplier)


def _anthropic(w: int, h: int, model: str) -> int:
    # The newer doc's formula, ⌈w/28⌉·⌈h/28⌉ (padding to a multiple of 28 px), which providers.md
    # gives as current; the older w·h/750 agrees within ~5% from about 1 MP up. The threshold is
    # "~1,600 tokens" (§15 note): every size in §4.3's max-size table passes unresized.
    name = model.lower()
    p = next((c for key, c in _CLAUDE.items() if key in name), _CLAUDE_DEFAULT)
    s = min(1.0, p.max_side / max(w, h))
    fw, fh = w * s, h * s
    if _ceil(fw / 28) * _ceil(fh / 28) > p.max_tokens:
        s = math.sqrt(p.max_tokens * 28 * 28 / (fw * fh))
        fw, fh = fw * s, fh * s
    tokens = _ceil(max(1, _floor(fw)) / 28) * _ceil(max(1, _floor(fh)) / 28)
    return min(tokens, p.max_tokens)  # padding after the area resize may overshoot slightly


def _area(w: int, h: int, *, box: int, pixels_per_token: int) -> int:
    """Mistral's ≈ W·H/k after the provider's downscale to fit ``box``×``box`` (§9)."""
    s = min(1.0, box / max(w, h))
    return max(1, _ceil(w * s * h * s / pixels_per_token))


def _cohere(w: int, h: int, detail: _Detail | None) -> int:
    # §10: low is 256; high fits 1536×2048 (width × height, as documented), then 256 per 512 px
    # tile plus one preview; auto (the default) is high when a side exceeds 768 px, else low.
    if detail == "low" or (detail != "high" and max(w, h) <= 768):
        return 256
    s = min(1.0, 1536 / w, 2048 / h)
    return 256 * (_ceil(w * s / 512) * _ceil(h * s / 512) + 1)


def _qwen(w: int, h: int, model: str) -> int:
    # §13: h̄·w̄/f² + 2, sides rounded to multiples of f (32 for Qwen3-VL and current qwen-vl-max
    # /plus, 28 for Qwen2/2.5-VL and QVQ), at least 4 and at most 16,384 tokens (the cap with
    # vl_high_resolution_images; without it ~1,280 is common, UNVERIFIED: we allow the larger).
    # The rescale follows Qwen's smart_resize; round() is Python's, as there.
    name = _bare(model)
    f = 28 if name.startswith(("qwen2", "qvq")) else 32
    min_px, max_px = 4 * f * f, 16_384 * f * f
    hb, wb = max(f, round(h / f) * f), max(f, round(w / f) * f)
    if hb * wb > max_px:
        beta = math.sqrt(h * w / max_px)
        hb, wb = max(f, _floor(h / beta / f) * f), max(f, _floor(w / beta / f) * f)
    elif hb * wb < min_px:
        beta = math.sqrt(min_px / (h * w))
        hb, wb = _ceil(h * beta / f) * f, _ceil(w * beta / f) * f
    return hb * wb // (f * f) + 2


def _bare(model: str) -> str:
    """The model name without a path (``models/``, ``publishers/google/models/``), lowercased."""
    return model.lower().rsplit("/", 1)[-1]


def _by_prefix(table: Mapping[str, _T], name: str, default: _T) -> _T:
    best = max((p for p in table if name.startswith(p)), key=len, default=None)
    return default if best is None else table[best]


def _ceil(x: float) -> int:
    return math.ceil(x - _EPS)


def _floor(x: float) -> int:
    return math.floor(x + _EPS)
