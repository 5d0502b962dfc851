"""Meaning checks of the ``governance`` section, run with the other config checks.

Each finding is a (path, message) pair; ``load.py`` turns them into its ``Problem``s (this
module cannot import them: ``load`` imports it). Everything the policy engine and the
guardrails would otherwise fail on at start-up (a pattern that does not compile, a keywords
guardrail without words) is reported here, with every other mistake of the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from aperture.settings import extras
from aperture.settings.governance import (
    GovernanceSettings,
    GuardrailSettings,
    LimitSettings,
    PolicyRule,
)

__all__ = ["governance_problems"]

Finding = tuple[str, str]


def _index(path: str, index: int) -> str:
    return f"{path}[{index}]"


def governance_problems(
    governance: GovernanceSettings, at: Callable[[str, int], str] = _index
) -> list[Finding]:
    """Every mistake in ``governance``, by field path, in file order.

    ``at`` names the path of a list's item: the loader's, which knows where each item was in
    the file when items in error were left out.
    """
    findings: list[Finding] = []
    for i, rule in enumerate(governance.policy):
        findings.extend(_check_rule(rule, at("governance.policy", i)))
    names: set[str] = set()
    for i, guardrail in enumerate(governance.guardrails):
        path = at("governance.guardrails", i)
        if guardrail.name in names:
            findings.append((f"{path}.name", f"duplicate guardrail name {guardrail.name!r}"))
        names.add(guardrail.name)
        findings.extend(_check_guardrail(guardrail, path))
    for i, limit in enumerate(governance.limits):
        findings.extend(_check_limit(limit, at("governance.limits", i)))
    pii = governance.pii
    if pii is not None and "phone" in pii.detectors and not extras.installed("pii"):
        findings.append(("governance.pii.detectors", extras.needs("pii")))
    return findings


def _check_rule(rule: PolicyRule, path: str) -> Iterator[Finding]:
    # Zero images (or bytes) is a usable rule, "no images"; a zero token cap is not.
    for field in ("max_images", "max_image_bytes"):
        value = getattr(rule, field)
        if value is not None and value < 0:
            yield f"{path}.{field}", "must not be negative"
    if rule.max_tokens is not None and rule.max_tokens <= 0:
        yield f"{path}.max_tokens", "must be positive"
    yield from _check_patterns(rule.deny_patterns, f"{path}.deny_patterns")


def _check_guardrail(guardrail: GuardrailSettings, path: str) -> Iterator[Finding]:
    if not guardrail.name.strip():
        yield f"{path}.name", "must not be empty"
    if guardrail.kind == "keywords":
        if not any(w.strip() for w in guardrail.words):
            yield f"{path}.words", "a keywords guardrail needs at least one word"
    elif guardrail.kind == "regex":
        if not guardrail.patterns:
            yield f"{path}.patterns", "a regex guardrail needs at least one pattern"
    elif not guardrail.model:
        yield f"{path}.model", "a model guardrail needs the guard model's name"
    yield from _check_patterns(guardrail.patterns, f"{path}.patterns")
    if guardrail.timeout_s <= 0:
        yield f"{path}.timeout_s", "must be positive"


def _check_patterns(patterns: tuple[str, ...], path: str) -> Iterator[Finding]:
    for j, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            yield f"{path}[{j}]", f"not a valid regular expression: {exc}"


def _check_limit(limit: LimitSettings, path: str) -> Iterator[Finding]:
    if (limit.tenant is None) == (limit.model is None):
        yield path, "give exactly one of tenant and model"
    for field in ("rpm", "tpm"):
        value = getattr(limit, field)
        if value is not None and value <= 0:
            yield f"{path}.{field}", "must be positive"
    budget = limit.budget
    if budget is not None:
        if budget.usd is not None and budget.usd < 0:
            yield f"{path}.budget.usd", "must not be negative"
        if budget.tokens is not None and budget.tokens < 0:
            yield f"{path}.budget.tokens", "must not be negative"
