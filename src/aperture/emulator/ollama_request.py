"""Reading an ``/api/chat`` body the way Ollama's server does: Go JSON decoding, then checks.

Ollama decodes the body into Go structs, so a wrong JSON type fails with Go's
``json: cannot unmarshal ...`` text and a string that is not standard base64 in ``images``
fails with ``illegal base64 data at input byte N`` (what a ``data:`` prefix produces: the
``:`` is byte 4). Unknown fields, like unknown ``options``, are ignored, as Go does.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec
import pybase64

from aperture.emulator.describe import Seen, SeenImage
from aperture.emulator.images import ImageRejected, inspect_base64
from aperture.media.sniff import sniff

__all__ = ["IMAGE_MIMES", "ChatRequest", "OllamaError", "parse_chat_request"]

ROLES = ("system", "user", "assistant", "tool")
IMAGE_MIMES = frozenset({"image/png", "image/jpeg", "image/webp"})
"""What Ollama's image processors decode (Go's jpeg and png, x/image webp)."""
UNKNOWN_FORMAT = "failed to process inputs: image: unknown format"
_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")
_INT_OPTIONS = frozenset({"num_predict", "seed", "num_ctx", "top_k", "num_keep"})
_FLOAT_OPTIONS = frozenset(
    {"temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty", "repeat_penalty"}
)


class OllamaError(Exception):
    """A failure rendered as Ollama's ``{"error": "..."}`` body."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    seen: Seen
    stream: bool
    max_words: int | None
    json_mode: bool
    tool_name: str | None
    """The tool the emulated model calls: the first offered, when the user spoke last."""
    top_logprobs: int | None = None
    """With ``logprobs: true``: the alternatives per token; None: logprobs not asked."""


@dataclass(slots=True)
class _Collector:
    model: str
    images: list[SeenImage] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    system: list[str] = field(default_factory=list)
    asked: str = ""


def parse_chat_request(body: bytes) -> ChatRequest:
    """Validate a request body.

    Raises:
        OllamaError: what Ollama would answer for the same body.
    """
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise OllamaError(400, "invalid character looking for beginning of value") from None
    if not isinstance(data, dict):
        raise _unmarshal(data, "", "api.ChatRequest")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise _unmarshal(model, "model", "string")
    if not model:
        raise OllamaError(400, "model is required")
    messages = data.get("messages") or []
    if not isinstance(messages, list):
        raise _unmarshal(messages, "messages", "[]api.Message")
    collector = _Collector(model)
    last_role = ""
    for message in messages:
        last_role = _read_message(collector, message)
    stream = data.get("stream", True)
    if not isinstance(stream, bool):
        raise _unmarshal(stream, "stream", "bool")
    tools = _read_tools(data.get("tools"))
    seen = Seen(
        images=tuple(collector.images),
        asked=collector.asked,
        system=" ".join(collector.system) if collector.system else None,
        text_chars=sum(len(text) for text in collector.texts),
    )
    return ChatRequest(
        model=model,
        seen=seen,
        stream=stream,
        max_words=_read_options(data.get("options")),
        json_mode=_read_format(data.get("format")),
        tool_name=tools[0] if tools and last_role == "user" else None,
        top_logprobs=_read_logprobs(data),
    )


def _read_logprobs(data: dict[str, object]) -> int | None:
    logprobs = data.get("logprobs", False)
    if not isinstance(logprobs, bool):
        raise _unmarshal(logprobs, "logprobs", "bool")
    top = data.get("top_logprobs", 0)
    if not isinstance(top, int) or isinstance(top, bool):
        raise _unmarshal(top, "top_logprobs", "int")
    if not 0 <= top <= 20:
        raise OllamaError(400, "top_logprobs must be between 0 and 20")
    return top if logprobs else None


def _read_message(collector: _Collector, message: object) -> str:
    if not isinstance(message, dict):
        raise _unmarshal(message, "messages", "api.Message")
    role = message.get("role")
    if not isinstance(role, str):
        raise _unmarshal(role, "messages.role", "string")
    if role not in ROLES:
        raise OllamaError(400, f"invalid role: {role}")
    content = message.get("content", "")
    if not isinstance(content, str):
        raise _unmarshal(content, "messages.content", "string")
    images = message.get("images") or []
    if not isinstance(images, list):
        raise _unmarshal(images, "messages.images", "[]api.ImageData")
    for image in images:
        collector.images.append(_read_image(collector.model, image))
    _read_tool_calls(message.get("tool_calls"))
    tool_name = message.get("tool_name")
    if tool_name is not None and not isinstance(tool_name, str):
        raise _unmarshal(tool_name, "messages.tool_name", "string")
    collector.texts.append(content)
    if role == "user":
        collector.asked = content
    elif role == "system":
        collector.system.append(content)
    return role


def _read_image(model: str, image: object) -> SeenImage:
    if not isinstance(image, str):
        raise _unmarshal(image, "messages.images", "api.ImageData")
    bad = _BASE64.search(image.encode())
    if bad is not None:
        raise OllamaError(400, f"illegal base64 data at input byte {bad.start()}")
    try:
        data = pybase64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        raise OllamaError(400, f"illegal base64 data at input byte {len(image)}") from None
    if "text" in model.lower():
        raise OllamaError(400, f'"{model}" does not support vision')
    sniffed = sniff(data)
    if sniffed is None or sniffed.mime not in IMAGE_MIMES:
        raise OllamaError(500, UNKNOWN_FORMAT)
    try:
        return inspect_base64(sniffed.mime, image, detail="auto", accepted=IMAGE_MIMES)
    except ImageRejected:
        raise OllamaError(500, UNKNOWN_FORMAT) from None


def _read_tool_calls(calls: object) -> None:
    if calls is None:
        return
    if not isinstance(calls, list):
        raise _unmarshal(calls, "messages.tool_calls", "[]api.ToolCall")
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise _unmarshal(call, "messages.tool_calls", "api.ToolCall")
        arguments = function.get("arguments", {})
        if not isinstance(arguments, dict):
            raise _unmarshal(
                arguments,
                "messages.tool_calls.function.arguments",
                "api.ToolCallFunctionArguments",
            )


def _read_tools(tools: object) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _unmarshal(tools, "tools", "api.Tools")
    names = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict):
            raise _unmarshal(tool, "tools", "api.Tool")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise OllamaError(400, "tool function name is required")
        names.append(name)
    return names


def _read_options(options: object) -> int | None:
    if options is None:
        return None
    if not isinstance(options, dict):
        raise _unmarshal(options, "options", "map[string]interface {}")
    for key, value in options.items():
        if key in _INT_OPTIONS and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise OllamaError(400, f'option "{key}" must be of type integer')
        if key in _FLOAT_OPTIONS and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise OllamaError(400, f'option "{key}" must be of type float32')
        if key == "stop" and (
            not isinstance(value, list) or not all(isinstance(s, str) for s in value)
        ):
            raise OllamaError(400, 'option "stop" must be of an array of strings')
    limit = options.get("num_predict")
    # Ollama reads num_predict < 0 as "no limit".
    return int(limit) if limit is not None and limit >= 0 else None


def _read_format(value: object) -> bool:
    if value is None or value == "":
        return False
    if value == "json" or isinstance(value, dict):
        return True
    raise OllamaError(400, f"invalid format: {msgspec.json.encode(value).decode()}")


def _unmarshal(value: object, path: str, go_type: str) -> OllamaError:
    kind = _json_kind(value)
    where = f" into Go struct field ChatRequest.{path}" if path else ""
    return OllamaError(400, f"json: cannot unmarshal {kind}{where} of type {go_type}")


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"
