"""The governance section's meaning checks, through the config loader: every problem found
at once, each named by its field path."""

import pytest

from aperture.governance.guardrails import Guardrails
from aperture.governance.policy import PolicyEngine
from aperture.settings import ConfigError, parse_settings

GOOD = """
governance:
  policy:
    - name: no-secrets
      match: {tenant: acme, model: "gpt-*"}
      deny_patterns: ["(?i)password\\\\s*[:=]", "hunter\\\\d"]
      max_images: 0
      max_tokens: 4096
  guardrails:
    - {name: words, kind: keywords, words: [bomb, credit card]}
    - {name: ids, kind: regex, patterns: ["\\\\b\\\\d{3}-\\\\d{2}-\\\\d{4}\\\\b"], stage: post}
    - {name: guard, kind: model, model: llama-guard, models: ["*-vision"], on_error: open}
  limits:
    - {tenant: acme, rpm: 60, tpm: 100000, budget: {usd: 0, tokens: 0, period: daily}}
    - {model: "gpt-*", rpm: 1}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, {})
    return [str(p) for p in caught.value.problems]


async def never_ask(model: str, prompt: str) -> str:
    raise AssertionError("not asked")


def test_a_good_governance_section_loads_and_builds() -> None:
    governance = parse_settings(GOOD, {}).governance
    assert governance.policy[0].deny_patterns == (r"(?i)password\s*[:=]", r"hunter\d")
    assert [g.name for g in governance.guardrails] == ["words", "ids", "guard"]
    # What the loader accepts, the engine and the guardrails can be built from.
    PolicyEngine(governance.policy)
    Guardrails(governance.guardrails, never_ask)


def test_patterns_that_do_not_compile_are_named_by_their_index() -> None:
    found = problems(
        """
governance:
  policy:
    - {deny_patterns: ["fine", "(unclosed"]}
  guardrails:
    - {name: rx, kind: regex, patterns: ["[z-a]", "ok"]}
"""
    )
    assert [p.split(": not a valid regular expression: ")[0] for p in found] == [
        "governance.policy[0].deny_patterns[1]",
        "governance.guardrails[0].patterns[0]",
    ]
    assert all(": not a valid regular expression: " in p for p in found)


def test_each_guardrail_kind_needs_what_it_uses_and_names_are_unique() -> None:
    found = problems(
        """
governance:
  guardrails:
    - {name: a, kind: keywords, words: ["  "]}
    - {name: b, kind: regex}
    - {name: a, kind: model, timeout_s: 0}
    - {name: d, kind: keywords, words: [x]}
"""
    )
    assert found == [
        "governance.guardrails[0].words: a keywords guardrail needs at least one word",
        "governance.guardrails[1].patterns: a regex guardrail needs at least one pattern",
        "governance.guardrails[2].name: duplicate guardrail name 'a'",
        "governance.guardrails[2].model: a model guardrail needs the guard model's name",
        "governance.guardrails[2].timeout_s: must be positive",
    ]


def test_limits_name_exactly_one_subject_with_usable_numbers() -> None:
    found = problems(
        """
governance:
  limits:
    - {rpm: 10}
    - {tenant: acme, model: "gpt-*", rpm: 10}
    - {tenant: acme, rpm: 0, tpm: -5}
    - {model: "*", budget: {usd: -1.5, tokens: -1}}
    - {model: "*", budget: {usd: 0, tokens: 0}}
"""
    )
    assert found == [
        "governance.limits[0]: give exactly one of tenant and model",
        "governance.limits[1]: give exactly one of tenant and model",
        "governance.limits[2].rpm: must be positive",
        "governance.limits[2].tpm: must be positive",
        "governance.limits[3].budget.usd: must not be negative",
        "governance.limits[3].budget.tokens: must not be negative",
    ]


def test_policy_numbers_must_be_usable() -> None:
    found = problems(
        """
governance:
  policy:
    - {max_images: -1, max_image_bytes: -1, max_tokens: 0}
    - {max_images: 0, max_image_bytes: 0, max_tokens: 1}
"""
    )
    assert found == [
        "governance.policy[0].max_images: must not be negative",
        "governance.policy[0].max_image_bytes: must not be negative",
        "governance.policy[0].max_tokens: must be positive",
    ]


def test_governance_problems_come_with_the_rest_of_the_file() -> None:
    found = problems(
        """
server: {max_body_bytes: 0}
governance:
  limits: [{rpm: 1}]
"""
    )
    assert found == [
        "server.max_body_bytes: must be positive",
        "governance.limits[0]: give exactly one of tenant and model",
    ]


def test_store_deadlines_must_be_positive() -> None:
    found = problems("storage: {database_timeout_s: 0, ledger_timeout_s: -1}")
    assert found == [
        "storage.ledger_timeout_s: must be positive",
        "storage.database_timeout_s: must be positive",
    ]


def test_the_responses_retention_must_be_positive() -> None:
    assert problems("responses: {retention_hours: 0}") == [
        "responses.retention_hours: must be positive"
    ]


def test_console_session_times_must_be_positive() -> None:
    found = problems("auth: {console_idle_s: 0, console_max_s: -1, console_cache_s: -2}")
    assert found == [
        "auth.console_idle_s: must be positive",
        "auth.console_max_s: must be positive",
        "auth.console_cache_s: must not be negative",
    ]
