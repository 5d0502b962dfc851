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

    usd: float | None = None
    tokens: int | None = None
    period: BudgetPeriod = "monthly"


class LimitSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Limits for every key of a tenant together, or for every caller of a model (a glob).

    Exactly one of ``tenant`` and ``model`` names what the limits apply to.
    """

    tenant: str | None = None
    model: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget: BudgetSettings | None = None


class PriceSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """USD per million tokens for models matching ``model`` (a glob on the public or upstream
    name); overrides the built-in table. ``image`` defaults to ``input``, ``output_image``
    (the images a model makes) to ``output``."""

    model: str
    input: float
    output: float
    image: float | None = None
    output_image: float | None = None


class PolicyMatch(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Which requests a rule applies to; every given field must match (globs for names)."""

    model: str | None = None
    key: str | None = None
    tenant: str | None = None


class PolicyRule(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One policy rule, evaluated before routing; the first violated ``block`` rule rejects."""

    name: str | None = None
    match: PolicyMatch = PolicyMatch()
    allow_models: tuple[str, ...] | None = None
    deny_models: tuple[str, ...] = ()
    max_images: int | None = None
    max_image_bytes: int | None = None
    allow_image_urls: bool | None = None
    max_tokens: int | None = None
    deny_patterns: tuple[str, ...] = ()
    """Regular expressions searched in the text portions (case-sensitive unless ``(?i)``)."""
    action: RuleAction = "block"


class PiiSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    action: PiiAction = "redact"
    detectors: tuple[PiiDetector, ...] = ALL_PII_DETECTORS
    phone_regions: tuple[str, ...] = ("US",)
    """Regions whose national number formats count as phones (numbers with ``+`` always do)."""
    scan_responses: bool = False
    """Also scan the model's answer (streamed ones too) with the same action."""


class GuardrailSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A named pre- or post-call check, applied to the routes and models it lists (all if
    both lists are empty)."""

    name: str
    kind: Literal["keywords", "regex", "model"]
    stage: Literal["pre", "post"] = "pre"
    words: tuple[str, ...] = ()
    """``keywords``: case-insensitive whole words or phrases."""
    patterns: tuple[str, ...] = ()
    """``regex``: regular expressions."""
    model: str | None = None
    """``model``: the guard model, called through this gateway; it answers SAFE or UNSAFE."""
    prompt: str | None = None
    """``model``: the instruction sent before the text to judge (a sensible default)."""
    routes: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    timeout_s: float = 5.0
    on_error: Literal["open", "closed"] = "closed"
    """What a guardrail that fails or times out does: let the request through, or refuse it."""
    action: RuleAction = "block"


class OcrSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Read the text rendered inside images (tesseract) so PII, policy and guardrails see it."""

    enabled: bool = False
    languages: str = "eng"
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
