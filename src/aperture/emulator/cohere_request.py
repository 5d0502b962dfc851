"""Reading a v2 ``/v2/chat`` body the way Cohere does: strict fields, messages and images.

Cohere refuses unknown top-level fields, wants image parts as objects with a ``url``
(``{"type": "image_url", "image_url": {"url", "detail"}}``), takes PNG, JPEG, WebP and
non-animated GIF, up to 20 images or 20 MB per request, and checks that every tool result
answers a tool call made earlier in the conversation.
"""

from __future__ import annotations

import math
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
    "CohereError",
    "image_tokens",
    "parse_chat_request",
]

FIELDS = frozenset(
    {
        "model",
        "messages",
        "tools",
        "strict_tools",
        "documents",
        "citation_options",
        "response_format",
        "safety_mode",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "k",
        "p",
        "logprobs",
        "tool_choice",
        "thinking",
        "priority",
        "stream",
    }
)
ROLES = ("user", "assistant", "system", "tool")
IMAGE_MIMES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
MAX_IMAGES = 20
MAX_TOTAL_BYTES = 20 * 1024 * 1024
DETAILS = ("auto", "low", "high")
TILE_TOKENS = 256


class CohereError(Exception):
    """A failure rendered as Cohere's ``{"id", "message"}`` body."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def invalid(message: str) -> CohereError:
    return CohereError(400, f"invalid request: {message}")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    seen: Seen
    stream: bool
    max_tokens: int | None
    json_mode: bool
    tool_name: str | None
    """Set when ``tool_choice`` is ``REQUIRED``: the first tool, which the answer calls."""
    logprobs: bool = False


@dataclass(slots=True)
class _Collector:
    model: str
    images: list[SeenImage] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    system: list[str] = field(default_factory=list)
    call_ids: set[str] = field(default_factory=set)
    image_bytes: int = 0
    asked: str = ""


def parse_chat_request(body: bytes) -> ChatRequest:
    """Validate a request body.

    Raises:
        CohereError: what Cohere would answer for the same body.
    """
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise invalid("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise invalid("body must be a JSON object")
    for key in data:
        if key not in FIELDS:
            raise invalid(f"unknown field: parameter {key} is not a valid field")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model is required")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages cannot be empty")
    collector = _Collector(model)
    for i, message in enumerate(messages):
        _read_message(collector, i, message)
    tool_name = _read_tools(data)
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream must be a boolean")
    _read_sampling(data)
    logprobs = data.get("logprobs", False)
    if not isinstance(logprobs, bool):
        raise invalid("logprobs must be a boolean")
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
        max_tokens=data.get("max_tokens"),
        json_mode=_read_response_format(data.get("response_format")),
        tool_name=tool_name,
        logprobs=logprobs,
    )


def image_tokens(image: SeenImage) -> int:
    """Cohere's formula: low is one 256-token tile; high fits 1536x2048, tiles plus preview."""
    detail = image.detail
    if image.is_url:
        return TILE_TOKENS
    if detail == "auto":
        detail = "high" if max(image.width, image.height) > 768 else "low"
    if detail == "low":
        return TILE_TOKENS
    scale = min(1.0, 1536 / max(image.width, 1), 2048 / max(image.height, 1))
    tiles = math.ceil(image.width * scale / 512) * math.ceil(image.height * scale / 512)
    return TILE_TOKENS * (tiles + 1)


def _read_message(collector: _Collector, i: int, message: object) -> None:
    if not isinstance(message, dict):
        raise invalid(f"messages[{i}] must be an object")
    role = message.get("role")
    if role not in ROLES:
        raise invalid(f"messages[{i}].role must be one of 'user', 'assistant', 'system' or 'tool'")
    if role == "assistant":
        _read_assistant(collector, i, message)
        return
    content = message.get("content")
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise invalid(f"messages[{i}].tool_call_id is required for tool messages")
        if call_id not in collector.call_ids:
            raise invalid(f"tool call id '{call_id}' not found in previous tool calls")
    texts = _read_content(collector, i, str(role), content)
    collector.texts.extend(texts)
    if role == "user":
        collector.asked = " ".join(texts)
    elif role == "system":
        collector.system.extend(texts)


def _read_assistant(collector: _Collector, i: int, message: Mapping[str, object]) -> None:
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise invalid(f"messages[{i}].tool_calls must be an array")
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            call_id = call.get("id") if isinstance(call, dict) else None
            if not isinstance(call_id, str) or not isinstance(function, dict):
                raise invalid(f"messages[{i}].tool_calls entries need an id and a function")
            if not isinstance(function.get("arguments", ""), str):
                raise invalid(f"messages[{i}].tool_calls[].function.arguments must be a string")
            collector.call_ids.add(call_id)
    plan = message.get("tool_plan")
    if plan is not None and not isinstance(plan, str):
        raise invalid(f"messages[{i}].tool_plan must be a string")
    content = message.get("content")
    if content is None:
        if not calls:
            raise invalid(f"messages[{i}] needs content or tool_calls")
        return
    collector.texts.extend(_read_content(collector, i, "assistant", content))


def _read_content(collector: _Collector, i: int, role: str, content: object) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise invalid(f"messages[{i}].content must be a string or an array of content blocks")
    allowed = {"user": ("text", "image_url"), "tool": ("text", "document")}.get(role, ("text",))
    if role == "assistant":
        allowed = ("text", "thinking")
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(part, dict) or kind not in allowed:
            raise invalid(f"messages[{i}].content[{j}].type must be one of {', '.join(allowed)}")
        if kind == "image_url":
            _read_image(collector, f"messages[{i}].content[{j}]", part.get("image_url"))
        elif kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise invalid(f"messages[{i}].content[{j}].text must be a string")
            texts.append(text)
    return texts


def _read_image(collector: _Collector, param: str, spec: object) -> None:
    if "text" in collector.model.lower():
        raise invalid(f"model '{collector.model}' does not support image inputs")
    if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
        raise invalid(f"{param}.image_url must be an object with a url")
    url: str = spec["url"]
    detail = spec.get("detail") or "auto"
    if detail not in DETAILS:
        raise invalid(f"{param}.image_url.detail must be one of auto, low, high")
    if len(collector.images) == MAX_IMAGES:
        raise invalid(f"too many images, the maximum is {MAX_IMAGES} per request")
    scheme = url.partition(":")[0].lower()
    if scheme in ("http", "https"):
        host = urlsplit(url).hostname
        if not host:
            raise invalid(f"{param}.image_url.url is not a valid URL")
        collector.images.append(SeenImage(detail=detail, host=host))
        return
    comma = url.find(",")
    header = url[5:comma].lower() if scheme == "data" and comma >= 0 else ""
    if not header.endswith(";base64"):
        raise invalid(f"{param}.image_url.url must be a base64 data URI or an http(s) URL")
    declared = header.split(";")[0]
    if declared not in IMAGE_MIMES:
        raise invalid(
            f"unsupported image type {declared or 'unknown'}, supported types are "
            "image/png, image/jpeg, image/webp and image/gif"
        )
    payload = url[comma + 1 :]
    try:
        image = inspect_base64(declared, payload, detail=detail, accepted=IMAGE_MIMES)
    except ImageRejected as rejected:
        if rejected.reason is Rejection.UNSUPPORTED and "Animated" in rejected.message:
            raise invalid("animated GIFs are not supported") from None
        raise invalid(f"{param}: {rejected.message}") from None
    collector.image_bytes += len(payload) * 3 // 4
    if collector.image_bytes > MAX_TOTAL_BYTES:
        raise invalid("images exceed the 20 MB total per request")
    collector.images.append(image)


def _read_tools(data: Mapping[str, object]) -> str | None:
    tools, choice = data.get("tools"), data.get("tool_choice")
    names = []
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("tools must be an array")
        for k, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise invalid(f"tools[{k}].function.name is required")
            if not isinstance(function.get("parameters"), dict):
                raise invalid(f"tools[{k}].function.parameters is required")
            names.append(function["name"])
    if choice is None:
        return None
    if choice not in ("REQUIRED", "NONE"):
        raise invalid("tool_choice must be one of REQUIRED, NONE")
    if not names:
        raise invalid("tool_choice requires tools to be specified")
    return names[0] if choice == "REQUIRED" else None


def _read_sampling(data: Mapping[str, object]) -> None:
    p = data.get("p")
    if p is not None and (not isinstance(p, int | float) or not 0.01 <= p <= 0.99):
        raise invalid("p must be between 0.01 and 0.99")
    temperature = data.get("temperature")
    if temperature is not None and (not isinstance(temperature, int | float) or temperature < 0):
        raise invalid("temperature must be a non-negative number")
    limit = data.get("max_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise invalid("max_tokens must be a positive integer")
    stops = data.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise invalid("stop_sequences must be an array of strings")
        if len(stops) > 5:
            raise invalid("stop_sequences can have at most 5 elements")


def _read_response_format(spec: object) -> bool:
    if spec is None:
        return False
    if not isinstance(spec, dict) or spec.get("type") not in ("text", "json_object"):
        raise invalid("response_format.type must be one of text, json_object")
    if spec["type"] == "text":
        if "json_schema" in spec:
            raise invalid("response_format.json_schema must not be set when type is text")
        return False
    schema = spec.get("json_schema")
    if schema is not None and not isinstance(schema, dict):
        raise invalid("response_format.json_schema must be an object")
    return True
