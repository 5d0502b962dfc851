"""OpenAI's error envelope and the wording of the validation errors it answers with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "UNPARSABLE_JSON",
    "UNSUPPORTED_IMAGE",
    "OpenAIError",
    "bad_image_url",
    "empty_array",
    "invalid_type",
    "invalid_value",
    "json_kind",
    "missing",
    "required",
]

UNPARSABLE_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)
UNSUPPORTED_IMAGE = (
    "You uploaded an unsupported image. Please make sure your image is below 20 MB in size and "
    "is of one the following formats: ['png', 'jpeg', 'gif', 'webp']."
)


class OpenAIError(Exception):
    """A failure rendered as OpenAI's ``{"error": {...}}`` envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        error = {"message": self.message, "type": self.type, "param": self.param}
        return {"error": {**error, "code": self.code}}


def missing(param: str) -> OpenAIError:
    return OpenAIError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def invalid_type(param: str, expected: str, value: object) -> OpenAIError:
    return OpenAIError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {json_kind(value)} instead.",
        param=param,
        code="invalid_type",
    )


def invalid_value(param: str, value: str, supported: Sequence[str]) -> OpenAIError:
    quoted = [f"'{item}'" for item in supported]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])}, and {quoted[-1]}"
    return OpenAIError(
        400,
        f"Invalid value: '{value}'. Supported values are: {listed}.",
        param=param,
        code="invalid_value",
    )


def empty_array(param: str) -> OpenAIError:
    return OpenAIError(
        400,
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an "
        "empty array instead.",
        param=param,
        code="empty_array",
    )


def bad_image_url(param: str, got: str) -> OpenAIError:
    return OpenAIError(
        400,
        f"Invalid '{param}'. Expected a base64-encoded data URL with an image MIME type (e.g. "
        f"'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), or an http(s) URL, but got {got}.",
        param=param,
        code="invalid_image_url",
    )


def json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def required(mapping: Mapping[str, object], key: str, parent: str | None = None) -> object:
    value = mapping.get(key)
    if value is None:
        raise missing(f"{parent}.{key}" if parent else key)
    return value
