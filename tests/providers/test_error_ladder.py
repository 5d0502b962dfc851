"""One error ladder: whatever the provider, a status its body says nothing about is
classified the same way, with the same retry hint; a provider's own error type or code names
the class but never hides the status the provider answered."""

from __future__ import annotations

import json

import pytest

from aperture.errors import (
    UpstreamError,
    UpstreamQuotaError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from aperture.model import Target
from aperture.providers import provider_for
from aperture.settings import ProviderSettings

KINDS = ["openai", "azure", "anthropic", "gemini", "bedrock", "mistral", "cohere", "ollama"]
BY_STATUS: list[tuple[int, type[UpstreamError]]] = [
    (400, UpstreamRejectedError),
    (401, UpstreamError),
    (402, UpstreamQuotaError),
    (403, UpstreamError),
    (404, UpstreamRejectedError),
    (408, UpstreamTimeoutError),
    (409, UpstreamRejectedError),
    (413, UpstreamRejectedError),
    (422, UpstreamRejectedError),
    (429, UpstreamRateLimitedError),
    (500, UpstreamUnavailableError),
    (502, UpstreamUnavailableError),
    (503, UpstreamUnavailableError),
    (504, UpstreamTimeoutError),
    (529, UpstreamUnavailableError),
]


def target(kind: str) -> Target:
    settings = ProviderSettings(name="p", kind=kind, api_key="k", region="us-east-1")  # type: ignore[arg-type]
    return Target(settings, "upstream-model")


def parse(kind: str, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
    return provider_for(kind).parse_error(status, body, headers, target(kind))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("status", "expected"), BY_STATUS)
@pytest.mark.parametrize("body", [b"<html>Bad gateway</html>", b"", b"{}"])
def test_a_status_the_body_says_nothing_about_is_classified_alike(
    kind: str, status: int, expected: type[UpstreamError], body: bytes
) -> None:
    error = parse(kind, status, body, {})
    assert type(error) is expected
    assert error.upstream_status == status
    assert error.provider == "p"
    if expected is UpstreamError:
        # The gateway's own key was refused: what the provider said about it is not repeated.
        assert error.message == f"p refused the gateway's credentials (HTTP {status})."


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [429, 503])
def test_every_provider_passes_on_a_clean_retry_hint(kind: str, status: int) -> None:
    error = parse(kind, status, b"", {"Retry-After": "2.5", "x-other": "1"})
    assert error.headers == {"retry-after": "3"}


@pytest.mark.parametrize(
    ("kind", "status", "body", "expected"),
    [
        # A type or code names its class whatever status carried it...
        ("openai", 400, {"error": {"code": "rate_limit_exceeded"}}, UpstreamRateLimitedError),
        ("anthropic", 400, {"error": {"type": "overloaded_error"}}, UpstreamUnavailableError),
        ("anthropic", 503, {"error": {"type": "not_found_error"}}, UpstreamRejectedError),
        ("gemini", 400, {"error": {"status": "DEADLINE_EXCEEDED"}}, UpstreamTimeoutError),
        ("mistral", 400, {"type": "billing_api_budget_exhausted"}, UpstreamQuotaError),
        ("bedrock", 429, {"__type": "ModelNotReadyException"}, UpstreamUnavailableError),
        # ...except one the provider also sends with other statuses: the status decides.
        ("anthropic", 429, {"error": {"type": "invalid_request_error"}}, UpstreamRateLimitedError),
    ],
)
def test_a_named_class_keeps_the_status_the_provider_answered(
    kind: str, status: int, body: object, expected: type[UpstreamError]
) -> None:
    error = parse(kind, status, json.dumps(body).encode(), {})
    assert type(error) is expected
    assert error.upstream_status == status


def test_a_rejection_the_type_names_is_passed_on_as_a_client_error() -> None:
    error = parse("anthropic", 503, json.dumps({"error": {"type": "not_found_error"}}).encode(), {})
    assert isinstance(error, UpstreamRejectedError)
    assert error.status_code == 400  # a 5xx is never passed on as a client error
    assert not error.retryable
