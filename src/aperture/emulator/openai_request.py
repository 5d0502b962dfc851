"""Reading a Chat Completions request the way OpenAI does: the body, messages and images.

OpenAI refuses a top-level field it does not know ("Unrecognized request argument
supplied"); an OpenAI-compatible server (vLLM, mounted as ``/vllm``) ignores it. Either way
the unknown fields are listed, so gateway tests can see what was passed through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import msgspec

from aperture.emulator.describe import Seen, SeenImage
from aperture.emulator.images import ImageRejected, Rejection, inspect_base64
from aperture.emulator.openai_errors import (
    UNPARSABLE_JSON,
    UNSUPPORTED_IMAGE,
    OpenAIError,
    bad_image_url,
    empty_array,
    invalid_type,
    invalid_value,
    json_kind,
    missing,
    required,
)
from aperture.emulator.openai_options import (
    STANDARD_FIELDS,
    Sampling,
    read_max_tokens,
    read_reasoning_effort,
    read_response_format,
    read_sampling,
    read_stream,
    read_tools,
    unknown_field,
)

__all__ = ["IMAGE_MIMES", "ChatRequest", "parse_chat_request", "read_data_uri"]

ROLES = ("system", "developer", "user", "assistant", "tool")
PART_TYPES = ("text", "image_url", "input_audio", "file")
ROLE_PART_TYPES: Mapping[str, tuple[str, ...]] = {
    "user": PART_TYPES,
    "assistant": ("text", "refusal"),
    "system": ("text",),
    "developer": ("text",),
    "tool": ("text",),
}
DETAILS = ("auto", "low", "high")
IMAGE_MIMES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    seen: Seen
    stream: bool
    include_usage: bool
    max_words: int | None
    json_mode: bool
    tool_name: str | None
    """Set when ``tool_choice`` forces a call: the tool the answer calls."""
    extra_fields: tuple[str, ...]
    sampling: Sampling
    reasoning_effort: str | None = None


@dataclass(slots=True)
class _Collector:
    text_only: bool
    video: bool = False
    """``video_url`` parts are taken (vLLM's extension; OpenAI refuses them)."""
    images: list[SeenImage] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    system: list[str] = field(default_factory=list)
    asked: str = ""


def parse_chat_request(body: bytes, *, strict: bool = True) -> ChatRequest:
    """Validate a request body; ``strict`` refuses unknown fields as OpenAI does.

    Raises:
        OpenAIError: what OpenAI would answer for the same body.
    """
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise OpenAIError(400, UNPARSABLE_JSON) from None
    if not isinstance(data, dict):
        got = json_kind(data)
        message = f"Invalid type for request body: expected an object, but got {got} instead."
        raise OpenAIError(400, message, code="invalid_type")
    unknown = [key for key in data if key not in STANDARD_FIELDS]
    if strict and unknown:
        raise unknown_field(unknown[0])
    extra_fields = tuple(sorted(unknown))
    model = required(data, "model")
    if not isinstance(model, str):
        raise invalid_type("model", "a string", model)
    messages = required(data, "messages")
    if not isinstance(messages, list):
        raise invalid_type("messages", "an array", messages)
    if not messages:
        raise empty_array("messages")
    collector = _Collector(text_only="text" in model.lower(), video=not strict)
    for i, message in enumerate(messages):
        _read_message(collector, i, message)
    stream, include_usage = read_stream(data)
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
        include_usage=include_usage,
        max_words=read_max_tokens(data),
        json_mode=read_response_format(data, collector.texts),
        tool_name=read_tools(data),
        extra_fields=extra_fields,
        sampling=read_sampling(data),
        reasoning_effort=read_reasoning_effort(data, model),
    )


def _read_message(collector: _Collector, i: int, message: object) -> None:
    param = f"messages[{i}]"
    if not isinstance(message, dict):
        raise invalid_type(param, "an object", message)
    role = required(message, "role", param)
    if not isinstance(role, str):
        raise invalid_type(f"{param}.role", "a string", role)
    if role not in ROLES:
        raise invalid_value(f"{param}.role", role, ROLES)
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise missing(f"{param}.tool_call_id")
    content = message.get("content")
    if content is None:
        if role == "assistant" and message.get("tool_calls"):
            return
        if role == "assistant" and "content" in message:
            raise OpenAIError(
                400,
                "Invalid value for 'content': expected a string, got null.",
                param=f"{param}.content",
            )
        raise missing(f"{param}.content")
    texts = _read_content(collector, i, role, content)
    collector.texts.extend(texts)
    if role == "user":
        collector.asked = " ".join(texts)
    elif role in ("system", "developer"):
        collector.system.extend(texts)


def _read_content(collector: _Collector, i: int, role: str, content: object) -> list[str]:
    param = f"messages[{i}].content"
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise invalid_type(param, "one of a string or array of objects", content)
    if not content:
        raise empty_array(param)
    texts = []
    for j, part in enumerate(content):
        text = _read_part(collector, (i, j), role, part)
        if text is not None:
            texts.append(text)
    return texts


def _read_part(collector: _Collector, at: tuple[int, int], role: str, part: object) -> str | None:
    i, j = at
    param = f"messages[{i}].content[{j}]"
    if not isinstance(part, dict):
        raise invalid_type(param, "an object", part)
    kind = required(part, "type", param)
    if not isinstance(kind, str):
        raise invalid_type(f"{param}.type", "a string", kind)
    if kind == "image_url" and role != "user":
        raise OpenAIError(
            400,
            f"Invalid 'messages[{i}]'. Image URLs are only allowed for messages with role "
            f"'user', but this message with role '{role}' contains an image URL.",
            param=f"messages[{i}]",
            code="invalid_value",
        )
    if kind == "video_url" and role == "user" and collector.video:
        return None
    if kind not in ROLE_PART_TYPES[role]:
        raise invalid_value(f"{param}.type", kind, ROLE_PART_TYPES[role])
    if kind == "image_url":
        if collector.text_only:
            # OpenAI's own wording and its odd dotted param style for this one error.
            raise OpenAIError(
                400,
                "Invalid content type. image_url is only supported by certain models.",
                param=f"messages.[{i}].content.[{j}].type",
            )
        collector.images.append(_read_image(param, part))
        return None
    payload = required(part, kind, param)
    if kind in ("text", "refusal"):
        if not isinstance(payload, str):
            raise invalid_type(f"{param}.{kind}", "a string", payload)
        return payload if kind == "text" else None
    if not isinstance(payload, dict):
        raise invalid_type(f"{param}.{kind}", "an object", payload)
    return None


def _read_image(param: str, part: Mapping[str, object]) -> SeenImage:
    spec = required(part, "image_url", param)
    if not isinstance(spec, dict):
        raise invalid_type(f"{param}.image_url", "an object", spec)
    url = required(spec, "url", f"{param}.image_url")
    if not isinstance(url, str):
        raise invalid_type(f"{param}.image_url.url", "a string", url)
    detail = spec.get("detail") or "auto"
    if detail not in DETAILS:
        raise invalid_value(f"{param}.image_url.detail", str(detail), DETAILS)
    url_param = f"{param}.image_url.url"
    scheme = url.partition(":")[0].lower()
    if scheme in ("http", "https"):
        host = urlsplit(url).hostname
        if not host:
            raise bad_image_url(url_param, "a URL without a host")
        return SeenImage(detail=detail, host=host)
    if scheme != "data":
        raise bad_image_url(url_param, f"the unsupported URL scheme '{scheme}'")
    return read_data_uri(url_param, url, detail)


def read_data_uri(param: str, url: str, detail: str) -> SeenImage:
    comma = url.find(",")
    header = url[5:comma].lower() if comma >= 0 else ""
    if not header.endswith(";base64"):
        raise bad_image_url(param, "a data URL that is not base64-encoded")
    declared = header.split(";")[0].strip()
    if not declared.startswith("image/"):
        raise bad_image_url(param, f"unsupported MIME type '{declared}'")
    if declared not in IMAGE_MIMES:
        raise OpenAIError(400, UNSUPPORTED_IMAGE, code="invalid_image_format")
    try:
        return inspect_base64(declared, url[comma + 1 :], detail=detail, accepted=IMAGE_MIMES)
    except ImageRejected as rejected:
        if rejected.reason is Rejection.TOO_LARGE:
            message = f"Image too large at '{param}': {rejected.message}"
            raise OpenAIError(400, message, code="image_too_large") from None
        if rejected.reason is Rejection.MISMATCH:
            message = f"Invalid image at '{param}': {rejected.message}"
            raise OpenAIError(400, message, code="invalid_image_format") from None
        raise OpenAIError(400, UNSUPPORTED_IMAGE, code="invalid_image_format") from None
