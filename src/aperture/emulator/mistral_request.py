"""Reading a Mistral chat completions body the way Mistral does, with its error envelopes.

Mistral validates with pydantic and forbids unknown fields: shape errors are a 422 whose
``message`` holds pydantic's ``detail`` list (``extra_forbidden``, ``missing``...), and
semantic refusals a 400 ``{"object": "error", "message", "type", "param", "code"}``. Images
are ``image_url`` parts whose value is a string (data URI or URL) or ``{"url", "detail"}``;
PNG, JPEG, WebP and single-frame GIF, at most 10 MB and 10000x10000 each, 8 per request.
Tool call ids must be nine ASCII letters or digits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import msgspec

from aperture.emulator.describe import Seen, SeenImage
from aperture.emulator.images import ImageRejected, Rejection, inspect_base64

__all__ = [
    "FIELDS",
    "IMAGE_MIMES",
    "MAX_IMAGES",
    "ChatRequest",
    "MistralError",
    "image_tokens",
    "parse_chat_request",
]

FIELDS = frozenset(
    [
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "metadata",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "min_tokens",
        "repetition_penalty",
        "top_k",
        "logprobs",
        "top_logprobs",
        "prompt_logprobs",
        "top_prompt_logprobs",
        "n",
        "prediction",
        "parallel_tool_calls",
        "reasoning_effort",
        "prompt_mode",
        "guardrails",
        "prompt_cache_key",
        "service_tier",
        "safe_prompt",
    ]
)
IMAGE_MIMES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
MAX_IMAGES = 8
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_SIDE = 10000
TOOL_CALL_ID = re.compile(r"[a-zA-Z0-9]{9}")
TOOL_CHOICES = ("auto", "none", "any", "required")
CHUNK_TYPES = ("text", "image_url", "input_audio", "document_url", "file", "thinking")


class MistralError(Exception):
    """A failure rendered as Mistral's ``{"object": "error", ...}`` envelope."""

    def __init__(
        self,
        status: int,
        message: object,
        *,
        type_: str = "invalid_request_message_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(str(message))
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        return {
            "object": "error",
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }


def unprocessable(kind: str, loc: tuple[str | int, ...], msg: str, value: object) -> MistralError:
    """Pydantic's 422, as Mistral wraps it."""
    detail = {"type": kind, "loc": ["body", *loc], "msg": msg, "input": value}
    return MistralError(422, {"detail": [detail]})


def refused(message: str, *, code: str | None = None, type_: str | None = None) -> MistralError:
    return MistralError(400, message, type_=type_ or "invalid_request_message_error", code=code)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    seen: Seen
    stream: bool
    max_tokens: int | None
    json_mode: bool
    tool_name: str | None
    """Set when ``tool_choice`` forces a call: the tool the answer calls."""
    top_logprobs: int | None = None
    """With ``logprobs: true``: the alternatives per token (0 when unset); None: not asked."""
    n: int = 1


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
        MistralError: what Mistral would answer for the same body.
    """
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise unprocessable("json_invalid", (0,), "JSON decode error", None) from None
    if not isinstance(data, dict):
        raise unprocessable("model_attributes_type", (), "Input should be an object", data)
    for key, value in data.items():
        if key not in FIELDS:
            raise unprocessable("extra_forbidden", (key,), "Extra inputs are not permitted", value)
    model = data.get("model")
    if not isinstance(model, str):
        raise unprocessable("missing", ("model",), "Field required", data)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise unprocessable("too_short", ("messages",), "List should have at least 1 item", [])
    collector = _Collector(model)
    for i, message in enumerate(messages):
        _read_message(collector, i, message)
    if len(collector.images) > MAX_IMAGES:
        raise refused(f"Too many images in request. Max is {MAX_IMAGES}.")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise unprocessable("bool_type", ("stream",), "Input should be a valid boolean", stream)
    limit = data.get("max_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise unprocessable("greater_than_equal", ("max_tokens",), "Input should be >= 0", limit)
    seen = Seen(
        images=tuple(collector.images),
        asked=collector.asked,
        system=" ".join(collector.system) if collector.system else None,
        text_chars=sum(len(text) for text in collector.texts),
    )
    return ChatRequest(
        top_logprobs=_read_logprobs(data),
        n=_read_n(data),
        model=model,
        seen=seen,
        stream=stream,
        max_tokens=limit,
        json_mode=_read_response_format(data.get("response_format")),
        tool_name=_read_tools(data),
    )


def _read_n(data: Mapping[str, object]) -> int:
    n = data.get("n")
    if n is None:
        return 1
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise unprocessable("greater_than_equal", ("n",), "Input should be >= 1", n)
    return n


def _read_logprobs(data: Mapping[str, object]) -> int | None:
    """``top_logprobs`` (0 when unset) if ``logprobs`` is true, else None."""
    logprobs = data.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise unprocessable("bool_type", ("logprobs",), "Input should be a valid boolean", logprobs)
    top = data.get("top_logprobs")
    if top is not None and (not isinstance(top, int) or isinstance(top, bool) or top < 0):
        raise unprocessable("greater_than_equal", ("top_logprobs",), "Input should be >= 0", top)
    return (top or 0) if logprobs else None


def image_tokens(image: SeenImage, model: str) -> int:
    """Mistral's estimate: one token per 16x16 patch (Pixtral, fit 1024) or 28x28 (others)."""
    if image.is_url:
        return 256
    patch, side = (16, 1024) if "pixtral" in model.lower() else (28, 1540)
    scale = min(1.0, side / max(image.width, image.height, 1))
    return math.ceil(image.width * scale / patch) * math.ceil(image.height * scale / patch)


def _read_message(collector: _Collector, i: int, message: object) -> None:
    if not isinstance(message, dict):
        raise unprocessable("model_type", ("messages", i), "Input should be an object", message)
    role = message.get("role")
    if role not in ("system", "user", "assistant", "tool"):
        raise unprocessable(
            "union_tag_invalid",
            ("messages", i),
            "Input tag does not match any of the expected tags: 'system', 'user', "
            "'assistant', 'tool'",
            message,
        )
    for call in message.get("tool_calls") or () if role == "assistant" else ():
        _check_tool_call_id(call.get("id") if isinstance(call, dict) else None)
    if role == "tool":
        _check_tool_call_id(message.get("tool_call_id"))
    content = message.get("content")
    if content is None:
        if role == "assistant" and message.get("tool_calls"):
            return
        raise unprocessable("missing", ("messages", i, role, "content"), "Field required", message)
    texts = _read_content(collector, i, str(role), content)
    collector.texts.extend(texts)
    if role == "user":
        collector.asked = " ".join(texts)
    elif role == "system":
        collector.system.extend(texts)


def _check_tool_call_id(call_id: object) -> None:
    if not isinstance(call_id, str) or not TOOL_CALL_ID.fullmatch(call_id):
        raise refused(
            f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a length of 9.",
            code="3280",
            type_="invalid_function_call",
        )


def _read_content(collector: _Collector, i: int, role: str, content: object) -> list[str]:
    if isinstance(content, str):
        return [content]
    loc: tuple[str | int, ...] = ("messages", i, role, "content")
    if not isinstance(content, list):
        raise unprocessable("list_type", loc, "Input should be a valid list", content)
    texts = []
    for j, chunk in enumerate(content):
        kind = chunk.get("type") if isinstance(chunk, dict) else None
        if not isinstance(chunk, dict) or kind not in CHUNK_TYPES:
            raise unprocessable("union_tag_invalid", (*loc, j), "Input tag is not valid", chunk)
        if kind == "image_url":
            if role not in ("user", "tool"):
                raise refused(f"Image chunks are not allowed in {role} messages.")
            collector.images.append(_read_image(collector.model, (*loc, j), chunk))
        elif kind == "text":
            text = chunk.get("text")
            if not isinstance(text, str):
                raise unprocessable(
                    "string_type", (*loc, j, "text"), "Input should be a valid string", text
                )
            texts.append(text)
    return texts


def _read_image(model: str, loc: tuple[str | int, ...], chunk: Mapping[str, object]) -> SeenImage:
    spec = chunk.get("image_url")
    detail: object = "auto"
    if isinstance(spec, dict):
        detail = spec.get("detail") or "auto"
        spec = spec.get("url")
    if not isinstance(spec, str):
        raise unprocessable(
            "string_type", (*loc, "image_url"), "Input should be a valid string", spec
        )
    if detail not in ("low", "auto", "high"):
        raise unprocessable(
            "enum", (*loc, "image_url", "detail"), "Input should be 'low', 'auto' or 'high'", detail
        )
    if "text" in model.lower():
        raise refused(f"Model {model} does not support image input.", code="3051")
    url, detail = spec, str(detail)
    scheme = url.partition(":")[0].lower()
    if scheme in ("http", "https"):
        host = urlsplit(url).hostname
        if not host:
            raise refused(f"Invalid image URL: {url[:100]}")
        return SeenImage(detail=detail, host=host)
    comma = url.find(",")
    header = url[5:comma].lower() if scheme == "data" and comma >= 0 else ""
    declared = header.split(";")[0]
    if not header.endswith(";base64") or declared not in IMAGE_MIMES:
        raise refused("Image format not supported. Supported formats are PNG, JPEG, WEBP and GIF.")
    try:
        image = inspect_base64(declared, url[comma + 1 :], detail=detail, accepted=IMAGE_MIMES)
    except ImageRejected as rejected:
        if rejected.reason is Rejection.UNSUPPORTED and "Animated" in rejected.message:
            raise refused("Animated GIFs are not supported; send a single-frame image.") from None
        raise refused(f"Image could not be processed: {rejected.message}") from None
    size = (len(url) - comma - 1) * 3 // 4
    if size > MAX_IMAGE_BYTES:
        raise refused("Image is too large. The maximum size is 10MB.")
    if max(image.width, image.height) > MAX_SIDE:
        raise refused(f"Image resolution is too large. The maximum is {MAX_SIDE}x{MAX_SIDE}.")
    return image


def _read_tools(data: Mapping[str, object]) -> str | None:
    tools, choice = data.get("tools"), data.get("tool_choice")
    names: list[str] = []
    for k, tool in enumerate(tools if isinstance(tools, list) else ()):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise unprocessable("missing", ("tools", k, "function", "name"), "Field required", tool)
        names.append(function["name"])
    if choice is None or choice in ("auto", "none"):
        return None
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise unprocessable(
                "enum",
                ("tool_choice",),
                "Input should be 'auto', 'none', 'any' or 'required'",
                choice,
            )
        if not names:
            raise refused("tool_choice requires tools.")
        return names[0]
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise unprocessable(
            "missing", ("tool_choice", "function", "name"), "Field required", choice
        )
    if name not in names:
        raise refused(f"Tool {name} in tool_choice is not in tools.")
    return name


def _read_response_format(spec: object) -> bool:
    if spec is None:
        return False
    kind = spec.get("type") if isinstance(spec, dict) else None
    if not isinstance(spec, dict) or kind not in ("text", "json_object", "json_schema"):
        raise unprocessable(
            "enum",
            ("response_format", "type"),
            "Input should be 'text', 'json_object' or 'json_schema'",
            spec,
        )
    if kind == "json_schema":
        schema = spec.get("json_schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
            raise unprocessable(
                "missing", ("response_format", "json_schema", "name"), "Field required", schema
            )
        if not isinstance(schema.get("schema"), dict):
            raise unprocessable(
                "missing", ("response_format", "json_schema", "schema"), "Field required", schema
            )
    return bool(kind != "text")
