"""The error tree and the error-code catalog.

Every failure a client can see is a ``GatewayError``. Each class carries, as class
attributes, its HTTP status, its error ``type``, its stable ``code`` and whether a retry
could help; instances add a message, the ``param`` path of the offending field and any
headers the response needs (``Retry-After``). Foreign exceptions are translated where they
enter (``raise ... from``) and rendered once, where they leave, in the client's dialect.

    GatewayError                         500 api_error
    ├── InvalidRequestError              400 invalid_request          (wrong types, bad fields)
    │   ├── InvalidJsonError             400 invalid_json             (malformed, deep, dup keys)
    │   ├── ImageUrlNotSupportedError    400 image_url_not_supported
    │   ├── ImageDecodeError             400 image_decode_error
    │   ├── UnsupportedImageFormatError  400 unsupported_image_format
    │   ├── TooManyImagesError           400 too_many_images
    │   ├── ImageUrlNotAllowedError      400 image_url_not_allowed
    │   ├── ImageFetchFailedError        400 image_fetch_failed
    │   ├── DocumentDecodeError          400 document_decode_error    (not a PDF, broken)
    │   ├── DocumentEncryptedError       400 document_encrypted
    │   ├── TooManyPagesError            400 too_many_pages
    │   ├── UnsupportedCapabilityError   400 unsupported_capability
    │   ├── UnsupportedParameterError    400 unsupported_parameter    (logprobs, n: no target can)
    │   ├── MaxTokensBelowMinimumError   400 max_tokens_below_minimum
    │   ├── PolicyViolationError         400 policy_violation
    │   └── PiiDetectedError             400 pii_detected
    ├── ImageTooLargeError               413 image_too_large
    ├── DocumentTooLargeError            413 document_too_large       (bytes, or page boxes)
    ├── MediaTooLargeError               413 media_too_large          (audio, video: bytes, length)
    ├── RequestTooLargeError             413 request_too_large
    ├── RequestTimeoutError              408 request_timeout          (the body came too slowly)
    ├── InvalidApiKeyError               401 invalid_api_key
    ├── ModelNotAllowedError             403 model_not_allowed
    ├── CsrfError                        403 csrf_failed              (console: no CSRF token)
    ├── NotFoundError                    404 not_found                (no such endpoint or record)
    │   ├── ModelNotFoundError           404 model_not_found
    │   ├── PreviousResponseNotFoundError 404 previous_response_not_found (unknown, expired,
    │   │                                    another tenant's, or sent with store: false)
    │   └── ItemNotFoundError            404 item_not_found           (an item_reference to an
    │                                        output item of no kept answer)
    ├── ConflictError                    409 conflict                 (admin: the id exists)
    ├── RateLimitExceededError           429 rate_limit_exceeded
    ├── BudgetExceededError              429 budget_exceeded
    ├── ServiceUnavailableError          503 service_unavailable      (a store budgets need is down)
    │   └── ShuttingDownError            503 shutting_down            (draining; Retry-After)
    └── UpstreamError                    502 upstream_error           (the provider failed us)
        ├── UpstreamRejectedError        4xx upstream_error           (the provider refused it)
        ├── UpstreamRateLimitedError     429 rate_limit_exceeded      (retryable, Retry-After)
        ├── UpstreamQuotaError           429 insufficient_quota       (never retried)
        ├── UpstreamUnavailableError     503 upstream_unavailable     (connect errors, 5xx)
        └── UpstreamTimeoutError         504 upstream_timeout

Retries and failover are decided by class and ``retryable``, never by message text.

A client's value is echoed in a message only through ``quote`` (cut to ``QUOTE_CHARS``), and a
foreign exception's text only through ``clip``: a 50 MB model name makes a short error, not a
50 MB one. As a last line, every message is clipped to ``MESSAGE_CHARS`` and every ``param``
to ``PARAM_CHARS`` when the error is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

__all__ = [
    "MESSAGE_CHARS",
    "PARAM_CHARS",
    "QUOTE_CHARS",
    "AdminDisabledError",
    "BudgetExceededError",
    "ConflictError",
    "CsrfError",
    "DocumentDecodeError",
    "DocumentEncryptedError",
    "DocumentTooLargeError",
    "GatewayError",
    "ImageDecodeError",
    "ImageFetchFailedError",
    "ImageTooLargeError",
    "ImageUrlNotAllowedError",
    "ImageUrlNotSupportedError",
    "InvalidApiKeyError",
    "InvalidJsonError",
    "InvalidRequestError",
    "ItemNotFoundError",
    "MaxTokensBelowMinimumError",
    "MediaTooLargeError",
    "MethodNotAllowedError",
    "ModelNotAllowedError",
    "ModelNotFoundError",
    "NotFoundError",
    "PiiDetectedError",
    "PolicyViolationError",
    "PreviousResponseNotFoundError",
    "RateLimitExceededError",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "ShuttingDownError",
    "TooManyImagesError",
    "TooManyPagesError",
    "UnsupportedCapabilityError",
    "UnsupportedImageFormatError",
    "UnsupportedParameterError",
    "UpstreamError",
    "UpstreamQuotaError",
    "UpstreamRateLimitedError",
    "UpstreamRejectedError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "clip",
    "quote",
]

QUOTE_CHARS = 100
"""How much of one client value a message shows."""
MESSAGE_CHARS = 4096
"""The longest message any error carries (a backstop: values are quoted far shorter)."""
PARAM_CHARS = 256
"""The longest ``param`` path (a path can hold a client's key name)."""


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """``value`` quoted for a message, cut to ``limit`` characters with its original length.

    ``quote("gpt-4o")`` is ``'gpt-4o'``; a 50 MB name is its first ``limit`` characters,
    an ellipsis and ``(52428800 characters)``. Control characters are escaped by ``repr``,
    so a value cannot forge lines in a log either.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit] + '…'!r} ({len(text)} characters)"


def clip(text: str, limit: int = 2 * QUOTE_CHARS) -> str:
    """``text`` (a foreign exception's message, which may embed a value) cut to ``limit``."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


class GatewayError(Exception):
    """A failure the client sees, with everything needed to render it in any dialect."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    code: ClassVar[str] = "internal_error"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        message = clip(message, MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.param = clip(param, PARAM_CHARS) if param is not None else None
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def status_code(self) -> int:
        """The HTTP status to answer with; upstream rejections pass the provider's through."""
        return self.status

    @property
    def should_retry(self) -> bool:
        """Whether a client retry could help; deterministic failures say no."""
        return self.retryable


class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class MethodNotAllowedError(InvalidRequestError):
    status = 405
    code = "method_not_allowed"


class InvalidJsonError(InvalidRequestError):
    code = "invalid_json"


class ImageUrlNotSupportedError(InvalidRequestError):
    code = "image_url_not_supported"


class ImageDecodeError(InvalidRequestError):
    code = "image_decode_error"


class UnsupportedImageFormatError(InvalidRequestError):
    code = "unsupported_image_format"


class TooManyImagesError(InvalidRequestError):
    code = "too_many_images"


class DocumentDecodeError(InvalidRequestError):
    code = "document_decode_error"


class DocumentEncryptedError(InvalidRequestError):
    code = "document_encrypted"


class TooManyPagesError(InvalidRequestError):
    code = "too_many_pages"


class ImageUrlNotAllowedError(InvalidRequestError):
    code = "image_url_not_allowed"


class ImageFetchFailedError(InvalidRequestError):
    code = "image_fetch_failed"


class UnsupportedCapabilityError(InvalidRequestError):
    code = "unsupported_capability"


class UnsupportedParameterError(InvalidRequestError):
    """A request field no target of the model can honour (``logprobs``, ``n`` > 1)."""

    code = "unsupported_parameter"


class MaxTokensBelowMinimumError(InvalidRequestError):
    code = "max_tokens_below_minimum"


class PolicyViolationError(InvalidRequestError):
    code = "policy_violation"


class PiiDetectedError(InvalidRequestError):
    code = "pii_detected"


class ImageTooLargeError(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "image_too_large"


class DocumentTooLargeError(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "document_too_large"


class MediaTooLargeError(GatewayError):
    """An audio or video part over its provider's limit, in bytes or in length."""

    status = 413
    type = "invalid_request_error"
    code = "media_too_large"


class RequestTooLargeError(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RequestTimeoutError(GatewayError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"
    retryable = True


class InvalidApiKeyError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class ModelNotAllowedError(GatewayError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class CsrfError(GatewayError):
    """A console session's state-changing call without the session's CSRF token."""

    status = 403
    type = "permission_error"
    code = "csrf_failed"


class AdminDisabledError(GatewayError):
    """The admin API on a gateway without ``auth.master_key``: no key could open it."""

    status = 403
    type = "permission_error"
    code = "admin_disabled"


class NotFoundError(GatewayError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class PreviousResponseNotFoundError(NotFoundError):
    # OpenAI's own type and code for it, so clients that branch on them keep working.
    type = "invalid_request_error"
    code = "previous_response_not_found"


class ItemNotFoundError(NotFoundError):
    type = "invalid_request_error"
    code = "item_not_found"


class ConflictError(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class RateLimitExceededError(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    retryable = True


class BudgetExceededError(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "budget_exceeded"


class ServiceUnavailableError(GatewayError):
    """The gateway itself cannot decide safely right now (budgets fail closed)."""

    status = 503
    type = "api_error"
    code = "service_unavailable"
    retryable = True


class ShuttingDownError(ServiceUnavailableError):
    """This process is stopping; another one (or this one, restarted) will answer."""

    code = "shutting_down"


class UpstreamError(GatewayError):
    """The provider failed; ``provider`` names it and ``upstream_status`` is what it said."""

    status = 502
    type = "api_error"
    code = "upstream_error"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        upstream_status: int | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param, headers=headers)
        self.provider = provider
        self.upstream_status = upstream_status


class UpstreamRejectedError(UpstreamError):
    """The provider refused the request itself (a 4xx): retrying elsewhere will not help."""

    type = "invalid_request_error"
    retryable = False

    @property
    def status_code(self) -> int:
        status = self.upstream_status
        return status if status is not None and 400 <= status < 500 else 400


class UpstreamRateLimitedError(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamQuotaError(UpstreamError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"
    retryable = False


class UpstreamUnavailableError(UpstreamError):
    status = 503
    code = "upstream_unavailable"


class UpstreamTimeoutError(UpstreamError):
    status = 504
    code = "upstream_timeout"
