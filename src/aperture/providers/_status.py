"""The one ladder from an upstream HTTP status to the gateway's error classes, and the one
reader of a provider's retry hints.

An adapter only translates what its body can tell (is this 429 a spent quota? does this
exception name a throttle?) into an ``ErrorClass`` and passes it in; the ladder is shared so
every provider classifies the same status the same way, and builds the same error for the
same class, which is what retries and failover rely on.

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
from typing import Literal

from aperture.errors import (
    UpstreamError,
    UpstreamQuotaError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_RETRY_AFTER_S",
    "ErrorClass",
    "body_text",
    "classify_status",
    "malformed",
    "retry_after_s",
    "retry_headers",
]

ErrorClass = Literal["quota", "rate_limited", "credentials", "timeout", "unavailable", "rejected"]
"""What a provider's own error type or code can say, whatever the HTTP status: its spent
quota or billing limit (never retried, whatever the status: some providers send it as a 400 or
inside a stream), a rate limit, the gateway's credentials refused, a timeout, the provider
unavailable (retried), the request itself refused (passed on, never retried)."""

MAX_RETRY_AFTER_S = 86_400.0
MAX_MESSAGE_CHARS = 500
"""How much of a provider's error message is kept: enough to act on, never a whole page."""
_CREDENTIALS = frozenset({401, 403})

# Each class: its error, its message, and whether the provider's retry hint goes with it (an
# overloaded provider may say when to come back, as a rate-limiting one does). The provider's
# text is never repeated when the gateway's credentials were refused: it may describe the key.
_ERRORS: Mapping[ErrorClass, tuple[type[UpstreamError], str, bool]] = {
    "quota": (UpstreamQuotaError, "{provider} quota is exhausted: {said}", False),
    "rate_limited": (UpstreamRateLimitedError, "{provider} is rate limiting: {said}", True),
    "credentials": (UpstreamError, "{provider} refused the gateway's credentials{shown}.", False),
    "timeout": (UpstreamTimeoutError, "{provider} timed out: {said}", False),
    "unavailable": (UpstreamUnavailableError, "{provider} failed: {said}", True),
    "rejected": (UpstreamRejectedError, "{provider} rejected the request: {said}", False),
}
_MID_STREAM = (UpstreamUnavailableError, "{provider} failed mid-stream: {said}", False)
_UNCLASSIFIED = (UpstreamError, "{provider} answered HTTP {status}: {said}", False)


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
    said: str | None,
    headers: Mapping[str, str],
    provider: str,
    *,
    kind: ErrorClass | None = None,
    credentials: Set[int] = _CREDENTIALS,
    transient: Set[int] = frozenset(),
    param: str | None = None,
) -> UpstreamError:
    """The error for an upstream failure: of ``kind`` when the provider's own error type or
    code names one, else of the class ``status`` says (None: an error event inside a 200
    stream, or a 200 body).

    ``status`` is kept as the error's ``upstream_status`` either way; ``said`` is the
    provider's message (clipped to ``MAX_MESSAGE_CHARS``). ``credentials`` are the statuses
    that mean the gateway's own key was refused (the provider's text, which may describe the
    key, is not repeated); ``transient`` are 4xx statuses worth another try.
    """
    said = (said or "no message")[:MAX_MESSAGE_CHARS]
    kind = kind or _status_class(status, credentials, transient)
    if kind is None:
        error, template, hints = _MID_STREAM if status is None else _UNCLASSIFIED
    else:
        error, template, hints = _ERRORS[kind]
    shown = "" if status is None else f" (HTTP {status})"
    return error(
        template.format(provider=provider, said=said, status=status, shown=shown),
        provider=provider,
        upstream_status=status,
        param=param if kind == "rejected" else None,
        headers=retry_headers(headers) if hints else None,
    )


def malformed(provider: str) -> UpstreamError:
    """The error for an answer or stream event that is not the JSON the provider documents."""
    return UpstreamError(f"{provider} sent a response that is not valid JSON.", provider=provider)


def body_text(body: bytes) -> str:
    """An error body that is not the provider's envelope, as the message (clipped)."""
    return body[:MAX_MESSAGE_CHARS].decode(errors="replace")


def _status_class(
    status: int | None, credentials: Set[int], transient: Set[int]
) -> ErrorClass | None:
    if status is None:
        return None
    if status == 402:
        return "quota"
    if status == 429:
        return "rate_limited"
    if status in credentials:
        return "credentials"
    if status in (408, 504):
        return "timeout"
    if status in transient or status >= 500:
        return "unavailable"
    if 400 <= status < 500:
        return "rejected"
    return None


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
