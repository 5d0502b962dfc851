"""The one ladder from an upstream HTTP status to the gateway's error classes, and the one
reader of a provider's retry hints.

Providers decide what only their body can tell (is this 429 a spent quota?) and pass it in;
the ladder is shared so every provider classifies the same status the same way, which is
what retries and failover rely on.

Retry hints (``retry-after-ms``, ``retry-after`` as delta-seconds or an HTTP date) are read
once, here, where they enter: what the gateway keeps on the error, acts on and passes to the
client is clean delta-seconds, never negative, never an HTTP date a client may misread, and
never more than ``MAX_RETRY_AFTER_S`` (a provider asking for years means "not soon").
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Set
from email.utils import parsedate_to_datetime
from typing import Any

from aperture.errors import (
    UpstreamError,
    UpstreamQuotaError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

__all__ = ["MAX_RETRY_AFTER_S", "classify_status", "retry_after_s", "retry_headers"]

MAX_RETRY_AFTER_S = 86_400.0
_CREDENTIALS = frozenset({401, 403})


def retry_after_s(headers: Mapping[str, str], *, now: float) -> float | None:
    """The wait a provider asked for, in seconds, or None if it named none (or nonsense).

    ``retry-after-ms`` first, being more precise, then ``retry-after`` as delta-seconds or an
    HTTP date, measured from ``now`` (Unix seconds). A negative, infinite or unparsable value
    is no hint at all; a date in the past means "now" (0).
    """
    millis = _non_negative(_header(headers, "retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = _header(headers, "retry-after")
    if value is None:
        return None
    seconds = _non_negative(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110 dates are GMT; a date without a zone is not one
    return max(0.0, when.timestamp() - now)


def retry_headers(headers: Mapping[str, str], *, now: float | None = None) -> dict[str, str]:
    """The provider's retry hint as clean headers: ``retry-after`` in whole seconds (rounded
    up, at most ``MAX_RETRY_AFTER_S``), plus ``retry-after-ms`` when the provider was that
    precise. Empty when the provider gave no usable hint."""
    wait = retry_after_s(headers, now=time.time() if now is None else now)
    if wait is None:
        return {}
    wait = min(wait, MAX_RETRY_AFTER_S)
    clean = {"retry-after": str(math.ceil(wait))}
    if _non_negative(_header(headers, "retry-after-ms")) is not None:
        clean["retry-after-ms"] = str(math.ceil(wait * 1000))
    return clean


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

    ``quota`` marks a spent quota or billing limit (never retried, whatever the status: some
    providers send it as a 400 or inside a stream); ``credentials`` are the statuses that mean
    the gateway's own key was refused (the provider's text, which may describe the key, is
    not repeated); ``transient`` are 4xx statuses worth another try.
    """
    kwargs: dict[str, Any] = {"provider": provider, "upstream_status": status}
    if quota or status == 402:
        return UpstreamQuotaError(f"{provider} quota is exhausted: {said}", **kwargs)
    if status is None:
        return UpstreamUnavailableError(f"{provider} failed mid-stream: {said}", **kwargs)
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
        # An overloaded provider may say when to come back, as a rate-limiting one does.
        return UpstreamUnavailableError(
            f"{provider} failed: {said}", headers=retry_headers(headers), **kwargs
        )
    if 400 <= status < 500:
        return UpstreamRejectedError(
            f"{provider} rejected the request: {said}", param=param, **kwargs
        )
    return UpstreamError(f"{provider} answered HTTP {status}: {said}", **kwargs)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return None if value is None else value.strip().lower()


def _non_negative(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
