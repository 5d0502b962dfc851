"""Google's error envelope: ``{"error": {"code", "message", "status", "details"?}}``.

Validation messages follow Google's two styles: the JSON parser's (``Invalid JSON payload
received. Unknown name "x" at 'contents[0]': Cannot find field.``, ``Invalid value at
'contents[0].parts[0].inline_data.data' (TYPE_BYTES), ...``, paths in proto snake_case) and
the request validator's (``* GenerateContentRequest.contents: contents is not specified``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

__all__ = [
    "BAD_REQUEST",
    "HTTP_STATUS",
    "GoogleError",
    "field_violation",
    "invalid",
    "invalid_value",
    "proto_path",
    "unknown_name",
]

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
# The google.rpc.Code Google answers each HTTP status with (cloud.google.com/apis/design/errors).
HTTP_STATUS: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


class GoogleError(Exception):
    """A failure rendered as Google's error envelope."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: str | None = None,
        details: Sequence[Mapping[str, object]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or HTTP_STATUS.get(code, "INTERNAL" if code >= 500 else "UNKNOWN")
        self.details = [dict(detail) for detail in details]
        self.headers = dict(headers or {})

    def error(self) -> dict[str, object]:
        error: dict[str, object] = {
            "code": self.code,
            "message": self.message,
            "status": self.status,
        }
        if self.details:
            error["details"] = self.details
        return error

    def body(self) -> dict[str, object]:
        return {"error": self.error()}


def proto_path(path: str) -> str:
    """Google quotes field paths by their proto names: ``inlineData`` -> ``inline_data``."""
    return _CAMEL.sub(lambda m: "_" + m.group(1).lower(), path)


def field_violation(path: str, description: str) -> dict[str, object]:
    violation: dict[str, str] = {"description": description}
    if path:
        violation["field"] = proto_path(path)
    return {"@type": BAD_REQUEST, "fieldViolations": [violation]}


def invalid(message: str) -> GoogleError:
    """A request-validator error: ``* GenerateContentRequest.<path>: <what>``."""
    return GoogleError(400, message)


def unknown_name(name: str, path: str) -> GoogleError:
    where = f" at '{proto_path(path)}'" if path else ""
    message = f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.'
    return GoogleError(400, message, details=[field_violation(path, message)])


def invalid_value(path: str, kind: str, value: object) -> GoogleError:
    """The JSON parser's wording for a value of the wrong type: ``(TYPE_STRING), 12``."""
    shown = json.dumps(value)[:80]
    message = f"Invalid value at '{proto_path(path)}' ({kind}), {shown}"
    return GoogleError(400, message, details=[field_violation(path, message)])
