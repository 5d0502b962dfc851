"""The one ladder from an upstream HTTP status to the gateway's error classes.

Providers decide what only their body can tell (is this 429 a spent quota?) and pass it in;
the ladder is shared so every provider classifies the same status the same way, which is
what retries and failover rely on.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

from aperture.errors import (
    UpstreamError,
    UpstreamQuotaError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

__all__ = ["classify_status", "retry_headers"]

_RETRY_HEADERS = ("retry-after", "retry-after-ms")
_CREDENTIALS = frozenset({401, 403})


def retry_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The provider's retry hints, passed on to the client unchanged."""
    return {k: v for k, v in headers.items() if k.lower() in _RETRY_HEADERS}


def classify_status(
    status: int | None,
    said: str,
    headers: Mapping[str, str],
    provider: str,
    *,
    quota: bool = False,
    credentials: Set[int] = _CREDENTIALS,
    transient: Set[int] = frozenset(),
    param: str | None = None,
) -> UpstreamError:
    """The error for ``status`` (None: an error event inside a 200 stream).

    ``quota`` marks a spent quota or billing limit (never retried); ``credentials`` are the
    statuses that mean the gateway's own key was refused (the provider's text, which may
    describe the key, is not repeated); ``transient`` are 4xx statuses worth another try.
    """
    kwargs: dict[str, Any] = {"provider": provider, "upstream_status": status}
    if status is None:
        return UpstreamUnavailableError(f"{provider} failed mid-stream: {said}", **kwargs)
    if quota or status == 402:
        return UpstreamQuotaError(f"{provider} quota is exhausted: {said}", **kwargs)
    if status == 429:
        return UpstreamRateLimitedError(
            f"{provider} is rate limiting: {said}", headers=retry_headers(headers), **kwargs
        )
    if status in credentials:
        return UpstreamError(
            f"{provider} refused the gateway's credentials (HTTP {status}).", **kwargs
        )
    if status in (408, 504):
        return UpstreamTimeoutError(f"{provider} timed out: {said}", **kwargs)
    if status in transient or status >= 500:
        return UpstreamUnavailableError(f"{provider} failed: {said}", **kwargs)
    if 400 <= status < 500:
        return UpstreamRejectedError(
            f"{provider} rejected the request: {said}", param=param, **kwargs
        )
    return UpstreamError(f"{provider} answered HTTP {status}: {said}", **kwargs)
