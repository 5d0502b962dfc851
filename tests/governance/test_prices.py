"""Prices: integer micro-dollars rounded up, the image split, longest-prefix built-ins,
Bedrock and provider-prefixed ids, config overrides as globs, and unknown models."""

from __future__ import annotations

import pytest

from aperture.governance.prices import BUILTIN_PRICES, Price, PriceTable
from aperture.settings.governance import PriceSettings


def test_cost_is_integer_micro_dollars_per_token() -> None:
    # USD per million tokens is micro-dollars per token: 1000 x 2.50 + 500 x 10.00.
    cost = Price(2.50, 10.00, 2.50).cost_micros(1000, 500, 0)
    assert cost == 7500
    assert type(cost) is int


def test_cost_rounds_up_to_the_next_micro_dollar() -> None:
    assert Price(0.15, 0.60, 0.15).cost_micros(1, 0, 0) == 1
    assert Price(0.15, 0.60, 0.15).cost_micros(0, 1, 0) == 1
    assert Price(0.15, 0.60, 0.15).cost_micros(0, 0, 0) == 0


def test_image_tokens_are_priced_apart_from_the_text_of_the_prompt() -> None:
    price = Price(input=1.0, output=2.0, image=10.0)
    # 600 text tokens at 1, 400 image tokens at 10, 50 output tokens at 2.
    assert price.cost_micros(1000, 50, 400) == 600 + 4000 + 100


def test_image_tokens_never_exceed_the_prompt_and_negatives_count_as_zero() -> None:
    price = Price(input=1.0, output=2.0, image=10.0)
    assert price.cost_micros(100, 0, 500) == 100 * 10
    assert price.cost_micros(100, -5, -3) == 100
    assert price.cost_micros(-1, -1, 0) == 0


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("claude-opus-4-1-20250805", "claude-opus-4"),
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("gemini-2.5-flash-001", "gemini-2.5-flash"),
        ("command-r-plus-08-2024", "command-r-plus"),
        ("command-r-08-2024", "command-r"),
    ],
)
def test_the_longest_builtin_prefix_wins(model: str, expected: str) -> None:
    assert PriceTable().price(model) == BUILTIN_PRICES[expected]


def test_a_mini_model_is_not_priced_as_its_big_sibling() -> None:
    table = PriceTable()
    mini, big = table.price("gpt-4o-mini"), table.price("gpt-4o")
    assert mini == Price(0.15, 0.60, 0.15, cache_read=0.075, cache_write=0.15)
    assert big == Price(2.50, 10.00, 2.50, cache_read=1.25, cache_write=2.50)


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4"),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("eu.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
        ("mistral.mistral-large-2407-v1:0", "mistral-large"),
        ("cohere.command-r-plus-v1:0", "command-r-plus"),
    ],
)
def test_bedrock_ids_are_priced_by_the_model_inside_them(upstream: str, expected: str) -> None:
    assert PriceTable().price("public-name", upstream) == BUILTIN_PRICES[expected]


def test_a_provider_path_prefix_is_ignored() -> None:
    assert PriceTable().price("openrouter/openai/gpt-4o-mini") == BUILTIN_PRICES["gpt-4o-mini"]


def test_the_upstream_model_prices_a_public_name_that_is_unknown() -> None:
    assert PriceTable().price("house-vision", "gpt-4o") == BUILTIN_PRICES["gpt-4o"]


def test_an_unknown_model_has_no_price() -> None:
    table = PriceTable()
    assert table.price("llama-3.1-8b-instruct") is None
    assert table.price("my-model", "my-upstream") is None


def test_unpriced_lists_the_public_names_without_a_price() -> None:
    table = PriceTable()
    names = [("vision", "gpt-4o"), ("local", "llama3.2-vision"), ("claude", "claude-2.1")]
    assert table.unpriced(names) == ["local", "claude"]


def test_a_config_override_wins_over_the_builtin_table() -> None:
    table = PriceTable([PriceSettings(model="gpt-4o*", input=1.0, output=3.0)])
    assert table.price("gpt-4o-mini") == Price(1.0, 3.0, 1.0)
    assert table.price("gpt-4o-2024-08-06") == Price(1.0, 3.0, 1.0)
    # Models the glob does not match keep their built-in price.
    assert table.price("gpt-4.1") == BUILTIN_PRICES["gpt-4.1"]


def test_an_override_glob_matches_the_upstream_model_too() -> None:
    table = PriceTable([PriceSettings(model="acme-*", input=0.5, output=1.5, image=4.0)])
    assert table.price("house-model", "acme-llm-7b") == Price(0.5, 1.5, 4.0)
    assert table.price("acme-llm-7b") == Price(0.5, 1.5, 4.0)
    assert table.price("house-model", "other-llm") is None


def test_an_override_prices_images_at_input_unless_told_otherwise() -> None:
    table = PriceTable(
        [
            PriceSettings(model="plain", input=2.0, output=4.0),
            PriceSettings(model="pricey-images", input=2.0, output=4.0, image=8.0),
        ]
    )
    assert table.price("plain") == Price(2.0, 4.0, 2.0)
    assert table.price("pricey-images") == Price(2.0, 4.0, 8.0)


def test_the_first_matching_override_wins() -> None:
    table = PriceTable(
        [
            PriceSettings(model="gpt-4o-mini", input=0.1, output=0.2),
            PriceSettings(model="gpt-*", input=9.0, output=9.0),
        ]
    )
    assert table.price("gpt-4o-mini") == Price(0.1, 0.2, 0.1)
    assert table.price("gpt-5") == Price(9.0, 9.0, 9.0)


def test_a_lookup_gives_the_same_answer_the_second_time() -> None:
    table = PriceTable()
    first = table.price("claude", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert table.price("claude", "us.anthropic.claude-sonnet-4-5-20250929-v1:0") == first
    # A different upstream under the same public name is looked up on its own.
    assert table.price("claude", "claude-opus-4-5") == BUILTIN_PRICES["claude-opus-4-5"]


def test_images_a_model_makes_are_charged_at_the_output_image_price() -> None:
    from aperture.governance.prices import PriceTable

    price = PriceTable().price("gpt-image-1")
    assert price is not None
    # 100 text tokens in at $5/M, 1056 image tokens out at $40/M.
    assert price.cost_micros(100, 1056, 0, 1056) == 500 + 42240
    gemini = PriceTable().price("draw", "gemini-2.5-flash-image")
    assert gemini is not None
    # 20 text tokens out at $2.50/M and 1290 image tokens out at $30/M.
    assert gemini.cost_micros(0, 1310, 0, 1290) == 50 + 38700


def test_cache_reads_and_writes_are_priced_at_their_own_rates() -> None:
    price = Price(input=2.0, output=8.0, image=2.0, cache_read=0.5, cache_write=2.5)
    # 100 fresh, 600 read, 300 written; 10 output.
    cost = price.cost_micros(1000, 10, 0, cache_read_tokens=600, cache_write_tokens=300)
    assert cost == 100 * 2 + 600 * 0.5 + 300 * 2.5 + 10 * 8
    # Unset cache rates are the input rate; cached tokens never exceed the prompt.
    plain = Price(input=2.0, output=8.0, image=2.0)
    assert plain.cost_micros(100, 0, 0, cache_read_tokens=500) == 200


@pytest.mark.parametrize(
    ("model", "read", "write"),
    [
        ("claude-sonnet-4-5", 0.30, 3.75),
        ("gpt-4o", 1.25, 2.50),
        ("gpt-5", 0.125, 1.25),
        ("gemini-2.5-flash", 0.03, 0.30),
    ],
)
def test_the_builtin_table_has_each_providers_cache_rates(
    model: str, read: float, write: float
) -> None:
    price = PriceTable().price(model)
    assert price is not None
    assert (price.cache_read, price.cache_write) == (read, write)


def test_configured_cache_prices_override() -> None:
    table = PriceTable(
        [PriceSettings(model="mine", input=1.0, output=1.0, cache_read=0.1, cache_write=1.5)]
    )
    price = table.price("mine")
    assert price is not None
    assert (price.cache_read, price.cache_write) == (0.1, 1.5)
