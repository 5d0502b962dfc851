"""Image-token estimates against the worked examples in providers.md, plus properties."""

import math
from typing import Literal, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aperture.images.tokens import TokenFamily, estimate_image_tokens, token_family

FAMILIES: tuple[TokenFamily, ...] = get_args(TokenFamily)
DETAILS: tuple[Literal["auto", "low", "high"] | None, ...] = (None, "auto", "low", "high")
MODELS = (
    "", "gpt-4o", "gpt-4o-mini", "gpt-5", "o1-pro", "gpt-5-mini", "gpt-5-nano", "o4-mini",
    "gpt-5.2", "gpt-5.4", "gpt-5.4-mini", "gpt-5.5", "gpt-5.6", "claude-opus-4-7",
    "qwen2.5-vl-72b-instruct", "qwen3-vl-plus",
)  # fmt: skip


# --- OpenAI tile models (§3.4 worked examples) ---------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "detail", "tokens"),
    [
        (1024, 1024, "high", 765),
        (2048, 4096, "high", 1105),
        (2048, 4096, "low", 85),
        (1024, 1024, "low", 85),
        (8000, 100, "low", 85),
    ],
)
def test_openai_tile_worked_examples(
    width: int, height: int, detail: Literal["low", "high"], tokens: int
) -> None:
    assert estimate_image_tokens("openai-tile", width, height, detail, model="gpt-4o") == tokens


@pytest.mark.parametrize(
    ("model", "low", "one_tile"),
    [
        ("gpt-5", 70, 210),
        ("gpt-5-chat-latest", 70, 210),
        ("gpt-4.1-2025-04-14", 85, 255),
        ("gpt-4.5-preview", 85, 255),
        ("gpt-4o-mini", 2833, 8500),
        ("o1", 75, 225),
        ("o1-pro", 75, 225),
        ("o3", 75, 225),
        ("computer-use-preview", 65, 194),
        ("some-azure-deployment", 85, 255),
    ],
)
def test_openai_tile_figures_per_model(model: str, low: int, one_tile: int) -> None:
    assert estimate_image_tokens("openai-tile", 512, 512, "low", model=model) == low
    assert estimate_image_tokens("openai-tile", 512, 512, "high", model=model) == one_tile


def test_openai_tile_auto_and_absent_are_costed_as_high() -> None:
    high = estimate_image_tokens("openai-tile", 2048, 4096, "high")
    assert estimate_image_tokens("openai-tile", 2048, 4096, "auto") == high
    assert estimate_image_tokens("openai-tile", 2048, 4096) == high


def test_unknown_uses_the_gpt_4o_tile_formula() -> None:
    assert estimate_image_tokens("unknown", 1024, 1024, model="grok-4") == 765
    assert estimate_image_tokens("unknown", 2048, 4096, "low", model="o1") == 85


# --- OpenAI patch models (§3.4 and §15) -------------------------------------------------------


def test_openai_patch_worked_examples_count_patches() -> None:
    # gpt-5.2 has no documented multiplier, so the estimate is the patch count itself.
    assert estimate_image_tokens("openai-patch", 1024, 1024, model="gpt-5.2") == 1024
    # 1800×2400 → 57×75 = 4275 → shrink 0.603 → 0.586 → 1056×1408 → 33×44 = 1452
    assert estimate_image_tokens("openai-patch", 1800, 2400, model="gpt-5.2") == 1452


@pytest.mark.parametrize(
    ("model", "multiplier"),
    [
        ("gpt-5-mini", 1.62),
        ("gpt-5-nano", 2.46),
        ("gpt-4.1-mini-2025-04-14", 1.62),
        ("gpt-4.1-nano-2025-04-14", 2.46),
        ("o4-mini", 1.72),
        ("gpt-5.4-mini", 1.62),
        ("gpt-5.4-nano", 2.46),
    ],
)
def test_openai_patch_multipliers(model: str, multiplier: float) -> None:
    for (w, h), patches in (((1024, 1024), 1024), ((1800, 2400), 1452)):
        tokens = estimate_image_tokens("openai-patch", w, h, "high", model=model)
        assert tokens == math.ceil(patches * multiplier)


def test_openai_patch_budgets() -> None:
    # 4275 patches fit the 10,000-patch "original" budget that "auto" means on gpt-5.5 (§3.3).
    assert estimate_image_tokens("openai-patch", 1800, 2400, "auto", model="gpt-5.5") == 4275
    assert estimate_image_tokens("openai-patch", 1800, 2400, model="gpt-5.5") == 4275
    for model in ("gpt-5.4", "gpt-5.5"):
        tokens = estimate_image_tokens("openai-patch", 1800, 2400, "high", model=model)
        assert 1536 < tokens <= 2500
    # GPT-5.6 "auto" does not resize at all.
    assert estimate_image_tokens("openai-patch", 6400, 6400, model="gpt-5.6") == 200 * 200


def test_openai_patch_low_is_the_512_px_version() -> None:
    assert estimate_image_tokens("openai-patch", 4096, 4096, "low", model="gpt-5.2") == 256
    assert estimate_image_tokens("openai-patch", 100, 100, "low", model="gpt-5.2") == 16


# --- Anthropic and Bedrock Claude (§4.3, §6.3, §7) -------------------------------------------


@pytest.mark.parametrize(
    ("width", "height"), [(1092, 1092), (951, 1268), (896, 1344), (819, 1456), (784, 1568)]
)
def test_anthropic_max_size_table_is_not_resized(width: int, height: int) -> None:
    # The doc's largest sizes sent unresized (≈1,600 tokens): counted as they are, padded to 28.
    unresized = math.ceil(width / 28) * math.ceil(height / 28)
    assert estimate_image_tokens("anthropic", width, height) == unresized
    assert unresized <= 1600


def test_anthropic_patch_formula_pads_to_multiples_of_28() -> None:
    assert estimate_image_tokens("anthropic", 28, 28) == 1
    assert estimate_image_tokens("anthropic", 29, 28) == 2
    assert estimate_image_tokens("anthropic", 1092, 1092) == 39 * 39


@pytest.mark.parametrize(("width", "height", "older_doc"), [(1000, 1000, 1334), (1092, 1092, 1590)])
def test_anthropic_stays_near_the_older_area_examples(
    width: int, height: int, older_doc: int
) -> None:
    # The older doc's w·h/750 examples (1000² ≈ 1334, 1092² ≈ 1590) agree within 5% at this
    # size; at 200×200 (≈ 54) padding to 28 px makes the newer formula count 64.
    tokens = estimate_image_tokens("anthropic", width, height)
    assert abs(tokens - older_doc) <= 0.05 * older_doc
    assert estimate_image_tokens("anthropic", 200, 200) == 64


def test_anthropic_provider_downscale() -> None:
    # Long edge above 1568 px is scaled down, keeping the aspect ratio.
    assert estimate_image_tokens("anthropic", 3136, 200) == estimate_image_tokens(
        "anthropic", 1568, 100
    )
    assert estimate_image_tokens("anthropic", 8000, 8000) == 1600
    # Opus 4.7's larger limit (2576 px, ~3.75 MP; UNVERIFIED) is applied to its model names.
    opus = estimate_image_tokens("anthropic", 1800, 1800, model="claude-opus-4-7")
    assert opus == math.ceil(1800 / 28) ** 2 > 1600
    bedrock = "us.anthropic.claude-opus-4-7-v1:0"
    assert estimate_image_tokens("bedrock-claude", 1800, 1800, model=bedrock) == opus


@given(st.integers(1, 10_000), st.integers(1, 10_000), st.sampled_from(MODELS))
def test_bedrock_claude_counts_like_anthropic(width: int, height: int, model: str) -> None:
    assert estimate_image_tokens("bedrock-claude", width, height, model=model) == (
        estimate_image_tokens("anthropic", width, height, model=model)
    )


# --- Gemini (§5.3, §5.4) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [
        (384, 384, 258),
        (100, 384, 258),
        (1, 1, 258),
        (385, 385, 258),
        (768, 768, 258),
        (769, 768, 516),
        (1024, 1024, 1032),
        (3000, 100, 4 * 258),
    ],
)
def test_gemini_258_per_768_tile(width: int, height: int, tokens: int) -> None:
    assert estimate_image_tokens("gemini", width, height) == tokens


def test_gemini_3_media_resolution_from_detail() -> None:
    assert estimate_image_tokens("gemini-3", 4000, 3000, "low") == 280
    assert estimate_image_tokens("gemini-3", 4000, 3000, "high") == 1120
    # "auto"/absent leave media_resolution unset; the provider's image default is HIGH (§5.3).
    assert estimate_image_tokens("gemini-3", 4000, 3000, "auto") == 1120
    assert estimate_image_tokens("gemini-3", 10, 10) == 1120


# --- Mistral, Cohere, Qwen, DeepSeek (§9, §10, §13) ------------------------------------------


@pytest.mark.parametrize(
    ("family", "width", "height", "tokens"),
    [
        ("mistral", 1540, 1540, 3025),
        ("mistral", 6000, 6000, 3025),
        ("mistral", 784, 784, 784),
        ("mistral", 3080, 1540, 1513),  # downscaled to 1540×770
        ("pixtral", 1024, 1024, 4096),
        ("pixtral", 5000, 5000, 4096),
        ("pixtral", 256, 256, 256),
        ("pixtral", 1, 1, 1),
    ],
)
def test_mistral_area_formulas(family: TokenFamily, width: int, height: int, tokens: int) -> None:
    assert estimate_image_tokens(family, width, height) == tokens


def test_cohere_worked_example_and_detail() -> None:
    # 10000×20000 → 1024×2048 → 8 tiles + preview = 2304 (§10).
    assert estimate_image_tokens("cohere", 10_000, 20_000, "high") == 2304
    assert estimate_image_tokens("cohere", 10_000, 20_000, "low") == 256
    assert estimate_image_tokens("cohere", 10_000, 20_000, "auto") == 2304
    # auto: high only when a side exceeds 768 px.
    assert estimate_image_tokens("cohere", 768, 768) == 256
    assert estimate_image_tokens("cohere", 769, 100) == 256 * (2 * 1 + 1)
    assert estimate_image_tokens("cohere", 512, 512, "high") == 512


@pytest.mark.parametrize(
    ("model", "width", "height", "tokens"),
    [
        ("qwen3-vl-plus", 1024, 1024, 32 * 32 + 2),
        ("qwen3-vl-plus", 1000, 1000, 31 * 31 + 2),  # 1000 rounds to 992
        ("qwen3-vl-plus", 32, 32, 4 + 2),  # lifted to the 4-token minimum
        ("qwen3-vl-plus", 8192, 8192, 16_384 + 2),  # held to the 16,384-token maximum
        ("Qwen/Qwen2.5-VL-7B-Instruct", 1120, 1120, 40 * 40 + 2),  # 28 px tokens
        ("qwen2.5vl:7b", 28, 28, 4 + 2),
    ],
)
def test_qwen_rounded_sides(model: str, width: int, height: int, tokens: int) -> None:
    assert estimate_image_tokens("qwen", width, height, model=model) == tokens


def test_deepseek_upper_bound() -> None:
    for w, h in ((10, 10), (800, 800), (8192, 8192)):
        for detail in DETAILS:
            assert estimate_image_tokens("deepseek", w, h, detail) == 384


# --- Properties ----------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (-1, 10), (10, -5)])
def test_non_positive_dimensions_are_rejected(family: TokenFamily, width: int, height: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        estimate_image_tokens(family, width, height)


@given(
    st.sampled_from(FAMILIES),
    st.integers(1, 20_000),
    st.integers(1, 20_000),
    st.sampled_from(DETAILS),
    st.sampled_from(MODELS),
)
def test_always_a_positive_int(
    family: TokenFamily,
    width: int,
    height: int,
    detail: Literal["auto", "low", "high"] | None,
    model: str,
) -> None:
    tokens = estimate_image_tokens(family, width, height, detail, model=model)
    assert type(tokens) is int
    assert tokens >= 1


@given(
    st.sampled_from(FAMILIES),
    st.integers(1, 20_000),
    st.integers(1, 20_000),
    st.sampled_from(MODELS),
)
def test_low_never_costs_more_than_high(
    family: TokenFamily, width: int, height: int, model: str
) -> None:
    low = estimate_image_tokens(family, width, height, "low", model=model)
    assert low <= estimate_image_tokens(family, width, height, "high", model=model)


# Where a family's count is monotone: everywhere for formulas without a provider resize, and
# below the size at which the provider starts to resize for the others (a resize to a budget
# with rounding can make a larger image cost slightly less, as the real providers do).
MONOTONE_UP_TO: dict[TokenFamily, tuple[int, int]] = {
    "openai-tile": (1, 768),
    "unknown": (1, 768),
    "openai-patch": (1, 1248),  # 39 × 39 patches stay within the 1,536 budget
    "anthropic": (1, 1120),  # 40 × 40 = 1,600 tokens
    "bedrock-claude": (1, 1120),
    "gemini": (1, 50_000),
    "gemini-3": (1, 50_000),
    "deepseek": (1, 50_000),
    "mistral": (1, 1540),
    "pixtral": (1, 1024),
    "cohere": (1, 1536),
    "qwen": (64, 3584),  # between the 4-token floor and the 16,384-token cap (28 px: 128²)
}


@pytest.mark.parametrize("family", FAMILIES)
def test_monotone_table_covers_every_family(family: TokenFamily) -> None:
    assert family in MONOTONE_UP_TO


@given(st.data(), st.sampled_from(FAMILIES), st.sampled_from(DETAILS))
def test_monotone_in_width_and_height(
    data: st.DataObject, family: TokenFamily, detail: Literal["auto", "low", "high"] | None
) -> None:
    lo, hi = MONOTONE_UP_TO[family]
    if family == "openai-patch" and detail == "low":
        hi = 512  # above it the provider shrinks to its 512 px version
    side = st.integers(lo, hi)
    w1, w2 = sorted((data.draw(side), data.draw(side)))
    h1, h2 = sorted((data.draw(side), data.draw(side)))
    model = data.draw(st.sampled_from(MODELS))
    small = estimate_image_tokens(family, w1, h1, detail, model=model)
    assert small <= estimate_image_tokens(family, w2, h1, detail, model=model)
    assert small <= estimate_image_tokens(family, w1, h2, detail, model=model)
    assert small <= estimate_image_tokens(family, w2, h2, detail, model=model)


# --- token_family ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "model", "family"),
    [
        ("openai", "gpt-4o", "openai-tile"),
        ("openai", "gpt-4o-2024-08-06", "openai-tile"),
        ("openai", "gpt-4o-mini", "openai-tile"),
        ("openai", "chatgpt-4o-latest", "openai-tile"),
        ("azure", "gpt-4.1", "openai-tile"),
        ("openai", "gpt-4.5-preview", "openai-tile"),
        ("openai", "o1", "openai-tile"),
        ("openai", "o1-pro", "openai-tile"),
        ("openai", "o3", "openai-tile"),
        ("openai", "gpt-5", "openai-tile"),
        ("openai", "gpt-5-chat-latest", "openai-tile"),
        ("openai", "computer-use-preview", "openai-tile"),
        ("openai", "gpt-5-mini", "openai-patch"),
        ("openai", "gpt-5-nano-2025-08-07", "openai-patch"),
        ("openai", "gpt-5.2", "openai-patch"),
        ("openai", "gpt-5.4", "openai-patch"),
        ("openai", "gpt-5.4-mini", "openai-patch"),
        ("openai", "gpt-5.5", "openai-patch"),
        ("azure", "gpt-4.1-mini", "openai-patch"),
        ("openai", "gpt-4.1-nano-2025-04-14", "openai-patch"),
        ("openai", "o4-mini", "openai-patch"),
        ("openai", "codex-mini-latest", "openai-patch"),
        ("openai", "gpt-5.1-codex-mini", "openai-patch"),
        ("openai", "GPT-4o", "openai-tile"),
        ("openai", "gpt-3.5-turbo", "unknown"),
        ("anthropic", "claude-sonnet-4-5", "anthropic"),
        ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "bedrock-claude"),
        ("bedrock", "us.anthropic.claude-opus-4-7-v1:0", "bedrock-claude"),
        ("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "bedrock-claude"),
        (
            "bedrock",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            "bedrock-claude",
        ),
        ("bedrock", "amazon.nova-pro-v1:0", "unknown"),
        ("bedrock", "meta.llama3-2-90b-instruct-v1:0", "unknown"),
        ("gemini", "gemini-3-pro-preview", "gemini-3"),
        ("gemini", "models/gemini-3-flash", "gemini-3"),
        ("gemini", "gemini-2.5-flash", "gemini"),
        ("gemini", "gemini-2.0-flash", "gemini"),
        ("mistral", "pixtral-large-latest", "pixtral"),
        ("mistral", "pixtral-12b-2409", "pixtral"),
        ("mistral", "mistral-large-latest", "mistral"),
        ("mistral", "mistral-small-2506", "mistral"),
        ("cohere", "command-a-vision-07-2025", "cohere"),
        ("qwen", "qwen-vl-max", "qwen"),
        ("qwen", "qwen3-vl-plus", "qwen"),
        ("vllm", "Qwen/Qwen2.5-VL-7B-Instruct", "qwen"),
        ("ollama", "qwen2.5vl:7b", "qwen"),
        ("vllm", "meta-llama/Llama-3.2-11B-Vision", "unknown"),
        ("deepseek", "deepseek-flash", "deepseek"),
        ("ollama", "llava:13b", "unknown"),
        ("xai", "grok-4", "unknown"),
        ("groq", "meta-llama/llama-4-scout-17b-16e-instruct", "unknown"),
        ("moonshot", "kimi-k2.5", "unknown"),
        ("glm", "glm-4.5v", "unknown"),
    ],
)
def test_token_family(kind: str, model: str, family: TokenFamily) -> None:
    assert token_family(kind, model) == family
