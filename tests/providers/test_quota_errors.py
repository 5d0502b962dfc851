"""Every provider's spent-quota answer is an ``UpstreamQuotaError`` (429, never retried),
decided by status, type or code and never by message text; its look-alikes are not."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from aperture.errors import (
    UpstreamError,
    UpstreamQuotaError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from aperture.model import Target
from aperture.providers import provider_for
from aperture.providers._status import MAX_RETRY_AFTER_S, retry_headers
from aperture.routing.retry import retryable
from aperture.settings import ProviderSettings


def target(kind: str) -> Target:
    settings = ProviderSettings(name="p", kind=kind, api_key="k", region="us-east-1")  # type: ignore[arg-type]
    return Target(settings, "upstream-model")


def parse(
    kind: str, status: int, body: object, headers: dict[str, str] | None = None
) -> UpstreamError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return provider_for(kind).parse_error(status, raw, headers or {}, target(kind))  # type: ignore[arg-type]


def openai_error(code: str | None, type_: str, message: str = "spent") -> dict[str, object]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def anthropic_error(type_: str, message: str, **extra: object) -> dict[str, object]:
    return {"type": "error", "error": {"type": type_, "message": message, **extra}}


QUOTA_ANSWERS = [
    pytest.param(
        "openai", 429, openai_error("insufficient_quota", "insufficient_quota"), id="openai"
    ),
    pytest.param(
        "openai",
        400,
        openai_error("billing_hard_limit_reached", "invalid_request_error"),
        id="openai-hard-limit-400",
    ),
    pytest.param(
        "openai",
        429,
        openai_error("billing_not_active", "billing_not_active"),
        id="openai-not-active",
    ),
    pytest.param("openai", 429, openai_error(None, "insufficient_quota"), id="openai-type-only"),
    pytest.param(
        "azure", 429, openai_error("insufficient_quota", "insufficient_quota"), id="azure"
    ),
    pytest.param(
        "anthropic", 402, anthropic_error("billing_error", "credit too low"), id="anthropic"
    ),
    pytest.param(
        "anthropic",
        429,
        anthropic_error(
            "rate_limit_error",
            "You have reached your API usage limits",
            details={"error_code": "enforced_spend_limit_reached"},
        ),
        id="anthropic-spend-limit",
    ),
    pytest.param(
        "gemini",
        429,
        {
            "error": {
                "code": 429,
                "status": "RESOURCE_EXHAUSTED",
                "message": "quota",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}],
                    }
                ],
            }
        },
        id="gemini-per-day",
    ),
    pytest.param(
        "gemini",
        403,
        {
            "error": {
                "code": 403,
                "status": "PERMISSION_DENIED",
                "message": "This API method requires billing to be enabled.",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "BILLING_DISABLED",
                        "domain": "googleapis.com",
                    }
                ],
            }
        },
        id="gemini-billing-disabled",
    ),
    pytest.param(
        "mistral",
        402,
        {
            "object": "error",
            "message": "Customer monthly spending limit reached.",
            "type": "billing_customer_monthly_spending_limit_reached",
            "param": None,
            "code": "2300",
        },
        id="mistral",
    ),
    pytest.param("cohere", 402, {"id": "e", "message": "add a payment method"}, id="cohere"),
    pytest.param("ollama", 402, {"error": "payment required"}, id="ollama"),
]


@pytest.mark.parametrize(("kind", "status", "body"), QUOTA_ANSWERS)
def test_spent_quotas_are_quota_errors(kind: str, status: int, body: object) -> None:
    error = parse(kind, status, body, {"retry-after": "30"})
    assert type(error) is UpstreamQuotaError
    assert error.status_code == 429
    assert error.code == "insufficient_quota"
    assert not retryable(error)
    assert not error.should_retry  # rendered with x-should-retry: false


def test_bedrock_service_quota_is_a_quota_error() -> None:
    headers = {"x-amzn-errortype": "ServiceQuotaExceededException:http://internal.amazon.com/"}
    error = parse("bedrock", 400, {"message": "tokens per day"}, headers)
    assert type(error) is UpstreamQuotaError
    assert not retryable(error)


LOOK_ALIKES = [
    # A rate limit is a rate limit, even when it mentions quota in its message.
    pytest.param(
        "openai",
        429,
        openai_error("rate_limit_exceeded", "requests", "You exceeded your current quota"),
        UpstreamRateLimitedError,
        id="openai-rate-limit",
    ),
    pytest.param(
        "anthropic",
        429,
        anthropic_error("rate_limit_error", "usage limits"),
        UpstreamRateLimitedError,
        id="anthropic-rate-limit",
    ),
    # Anthropic's spent credit balance says so only in its message: a refusal, not retried.
    pytest.param(
        "anthropic",
        400,
        anthropic_error("invalid_request_error", "Your credit balance is too low."),
        UpstreamRejectedError,
        id="anthropic-credit-message",
    ),
    pytest.param(
        "mistral",
        429,
        {
            "object": "error",
            "message": "Rate limit exceeded",
            "type": "rate_limited",
            "code": "1300",
        },
        UpstreamRateLimitedError,
        id="mistral-rate-limited",
    ),
    # Ollama Cloud's usage limits are 429s with only a message to tell them apart.
    pytest.param(
        "ollama",
        429,
        {"error": "you have reached your weekly usage limit"},
        UpstreamRateLimitedError,
        id="ollama-usage-limit",
    ),
]


@pytest.mark.parametrize(("kind", "status", "body", "expected"), LOOK_ALIKES)
def test_look_alikes_are_classified_by_their_fields(
    kind: str, status: int, body: object, expected: type[UpstreamError]
) -> None:
    assert type(parse(kind, status, body)) is expected


def test_a_quota_error_as_a_streams_event_is_not_retried() -> None:
    # An error object inside a 200 (the first event of a stream) is still a spent quota.
    body = openai_error("insufficient_quota", "insufficient_quota")
    error = parse("openai", 200, body)
    assert type(error) is UpstreamQuotaError
    other = parse("openai", 200, openai_error(None, "server_error"))
    assert type(other) is UpstreamUnavailableError


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, {"retry-after": "7"}),
        ({"retry-after": "2.5"}, {"retry-after": "3"}),
        ({"retry-after-ms": "1500"}, {"retry-after": "2", "retry-after-ms": "1500"}),
        (
            {"retry-after-ms": "250", "retry-after": "9"},
            {"retry-after": "1", "retry-after-ms": "250"},
        ),
        (
            {"retry-after": format_datetime(datetime.fromtimestamp(NOW + 42, UTC), usegmt=True)},
            {"retry-after": "42"},
        ),
        (
            {"retry-after": format_datetime(datetime.fromtimestamp(NOW - 60, UTC), usegmt=True)},
            {"retry-after": "0"},
        ),
        ({"retry-after": "-3"}, {}),
        ({"retry-after": "soon"}, {}),
        ({"retry-after": "nan"}, {}),
        ({"retry-after": "1e300"}, {"retry-after": str(int(MAX_RETRY_AFTER_S))}),
        ({"retry-after-ms": "inf", "retry-after": "4"}, {"retry-after": "4"}),
        ({"x-ratelimit-reset-requests": "1s"}, {}),
    ],
)
def test_retry_hints_are_cleaned_where_they_enter(
    headers: dict[str, str], expected: dict[str, str]
) -> None:
    assert retry_headers(headers, now=NOW) == expected


@pytest.mark.parametrize("kind", ["openai", "anthropic", "mistral", "cohere", "ollama"])
def test_absurd_retry_hints_never_reach_the_client(kind: str) -> None:
    bodies: dict[str, object] = {
        "openai": openai_error("rate_limit_exceeded", "requests"),
        "anthropic": anthropic_error("rate_limit_error", "slow down"),
        "mistral": {"object": "error", "message": "slow", "type": "rate_limited"},
        "cohere": {"id": "e", "message": "slow"},
        "ollama": {"error": "slow"},
    }
    negative = parse(kind, 429, bodies[kind], {"retry-after": "-5"})
    assert isinstance(negative, UpstreamRateLimitedError)
    assert negative.headers == {}
    huge = parse(kind, 429, bodies[kind], {"retry-after": "99999999999"})
    assert huge.headers == {"retry-after": str(int(MAX_RETRY_AFTER_S))}
