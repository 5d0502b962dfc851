"""The ``governance`` section of the config file: prices, limits, policy, PII, guardrails, OCR.

Every rule here applies to vision requests exactly as to text ones; rules that read text read
the text portions of the messages (and, with ``ocr``, the text found inside images).
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "BudgetPeriod",
    "BudgetSettings",
    "GovernanceSettings",
    "GuardrailSettings",
    "LimitSettings",
    "OcrSettings",
    "PiiAction",
    "PiiDetector",
    "PiiSettings",
    "PolicyMatch",
    "PolicyRule",
    "PriceSettings",
]

BudgetPeriod = Literal["daily", "weekly", "monthly", "total"]
PiiDetector = Literal["email", "phone", "card", "iban", "national_id", "ip", "secret"]
PiiAction = Literal["block", "redact", "log"]
RuleAction = Literal["block", "log"]
ALL_PII_DETECTORS: tuple[PiiDetector, ...] = (
    "email",
    "phone",
    "card",
    "iban",
    "national_id",
    "ip",
    "secret",
)


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A config section: immutable, and an unknown field is an error with its path."""


class BudgetSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A spend cap per period (UTC calendar windows; ``total`` never resets)."""

    # Spend cap in USD per period.
    usd: float | None = None
    # Token cap per period.
    tokens: int | None = None
    # The window the cap applies to.
    period: BudgetPeriod = "monthly"


class LimitSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Limits for every key of a tenant together, or for every caller of a model (a glob).

    Exactly one of ``tenant`` and ``model`` names what the limits apply to.
    """

    # The tenant whose keys share these limits.
    tenant: str | None = None
    # Glob on the model whose callers share these limits.
    model: str | None = None
    # Requests per minute.
    rpm: int | None = None
    # Tokens per minute.
    tpm: int | None = None
    budget: BudgetSettings | None = None


class PriceSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """USD per million tokens for models matching ``model`` (a glob on the public or upstream
    name); overrides the built-in table. ``image`` defaults to ``input``, ``output_image``
    (the images a model makes) to ``output``."""

    # Glob on the public or upstream model name.
    model: str
    # USD per million input tokens.
    input: float
    # USD per million output tokens.
    output: float
    # USD per million image tokens; defaults to input.
    image: float | None = None
    # USD per million tokens of images the model makes; defaults to output.
    output_image: float | None = None
    # USD per million prompt tokens read from the provider's prompt cache; defaults to input.
    cache_read: float | None = None
    # USD per million prompt tokens written to the provider's prompt cache; defaults to input.
    cache_write: float | None = None


class PolicyMatch(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Which requests a rule applies to; every given field must match (globs for names)."""

    # Glob on the requested model name.
    model: str | None = None
    # Glob on the API key's name.
    key: str | None = None
    # Glob on the key's tenant.
    tenant: str | None = None


class PolicyRule(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One policy rule, evaluated before routing; the first violated ``block`` rule rejects."""

    # The rule's name, in refusals and audit events.
    name: str | None = None
    match: PolicyMatch = PolicyMatch()
    # Globs of the only models the matched requests may use.
    allow_models: tuple[str, ...] | None = None
    # Globs of models the matched requests may not use.
    deny_models: tuple[str, ...] = ()
    # Most images a matched request may carry.
    max_images: int | None = None
    # Largest image a matched request may carry, in bytes.
    max_image_bytes: int | None = None
    # Whether matched requests may give images as URLs.
    allow_image_urls: bool | None = None
    # Largest max_tokens a matched request may ask for.
    max_tokens: int | None = None
    deny_patterns: tuple[str, ...] = ()
    """Regular expressions searched in the text portions (case-sensitive unless ``(?i)``)."""
    # Refuse a violating request, or only record the violation.
    action: RuleAction = "block"


class PiiSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # What to do with a detected item: refuse the request, replace it with a placeholder, or
    # only record it.
    action: PiiAction = "redact"
    # Which kinds of personal data to look for.
    detectors: tuple[PiiDetector, ...] = ALL_PII_DETECTORS
    phone_regions: tuple[str, ...] = ("US",)
    """Regions whose national number formats count as phones (numbers with ``+`` always do)."""
    scan_responses: bool = False
    """Also scan the model's answer (streamed ones too) with the same action."""


class GuardrailSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A named pre- or post-call check, applied to the routes and models it lists (all if
    both lists are empty)."""

    # The guardrail's name, in refusals and audit events.
    name: str
    # How the text is judged: keywords, regular expressions, or a guard model.
    kind: Literal["keywords", "regex", "model"]
    # Check the request before the call, or the answer after it.
    stage: Literal["pre", "post"] = "pre"
    words: tuple[str, ...] = ()
    """``keywords``: case-insensitive whole words or phrases."""
    patterns: tuple[str, ...] = ()
    """``regex``: regular expressions."""
    model: str | None = None
    """``model``: the guard model, called through this gateway; it answers SAFE or UNSAFE."""
    prompt: str | None = None
    """``model``: the instruction sent before the text to judge (a sensible default)."""
    # Route ids the guardrail applies to.
    routes: tuple[str, ...] = ()
    # Model names (globs) the guardrail applies to.
    models: tuple[str, ...] = ()
    # Deadline for one check (a guard model's call).
    timeout_s: float = 5.0
    on_error: Literal["open", "closed"] = "closed"
    """What a guardrail that fails or times out does: let the request through, or refuse it."""
    # Refuse a flagged request or answer, or only record it.
    action: RuleAction = "block"


class OcrSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Read the text rendered inside images (tesseract) so PII, policy and guardrails see it."""

    # Read text inside images (needs the ocr extra and the tesseract binary).
    enabled: bool = False
    # Tesseract language codes, joined with + (eng+deu).
    languages: str = "eng"
    # Deadline for reading one image.
    timeout_s: float = 10.0
    max_pixels: int = 12_000_000
    """Larger images are downscaled before OCR (bounds the time it takes)."""


class GovernanceSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pii: PiiSettings | None = None
    policy: tuple[PolicyRule, ...] = ()
    guardrails: tuple[GuardrailSettings, ...] = ()
    prices: tuple[PriceSettings, ...] = ()
    limits: tuple[LimitSettings, ...] = ()
    ocr: OcrSettings = OcrSettings()
