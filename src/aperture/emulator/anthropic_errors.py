"""Anthropic's error envelope: ``{"type": "error", "error": {"type", "message"}, "request_id"}``.

Validation messages follow Anthropic's style: a dotted path into the body (``messages.0.
content.1.image.source.base64.data``), a colon, then what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "STATUS_TYPES",
    "AnthropicError",
    "extra_input",
    "field_required",
    "invalid",
    "unknown_tag",
    "wrong_type",
]

# platform.claude.com/docs/en/api/errors: the documented status of each error type.
STATUS_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class AnthropicError(Exception):
    """A failure rendered as Anthropic's error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str | None = None,
        details: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_ or STATUS_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        self.details = dict(details) if details is not None else None
        self.headers = dict(headers or {})

    def error(self) -> dict[str, object]:
        error: dict[str, object] = {"type": self.type, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return error

    def body(self, request_id: str) -> dict[str, object]:
        return {"type": "error", "error": self.error(), "request_id": request_id}


def invalid(message: str) -> AnthropicError:
    return AnthropicError(400, message)


def field_required(path: str) -> AnthropicError:
    return invalid(f"{path}: Field required")


def extra_input(path: str) -> AnthropicError:
    return invalid(f"{path}: Extra inputs are not permitted")


def unknown_tag(path: str, tag: object, expected: Sequence[str]) -> AnthropicError:
    listed = ", ".join(f"'{name}'" for name in expected)
    return invalid(
        f"{path}: Input tag '{tag}' found using 'type' does not match any of the expected "
        f"tags: {listed}"
    )


def wrong_type(path: str, expected: str) -> AnthropicError:
    """Pydantic's wording, which Anthropic's validation messages quote: ``Input should be ...``."""
    return invalid(f"{path}: Input should be {expected}")
