"""Building Mistral ``/v1/chat/completions`` bodies, and Mistral-valid tool call ids.

Private to ``providers.mistral``, whose module docstring lists the translation choices.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from aperture.errors import InvalidRequestError, UnsupportedCapabilityError
from aperture.model import (
    Audio,
    ChatRequest,
    File,
    Image,
    Message,
    NamedToolChoice,
    Part,
    ResponseFormat,
    Text,
    Tool,
    Video,
)
from aperture.providers._json_body import verbatim

__all__ = ["TOOL_CALL_ID", "build_body", "mistral_tool_call_id"]

TOOL_CALL_ID = re.compile(r"[A-Za-z0-9]{9}")
"""What Mistral accepts as a tool call id (``Tool call id was ... but must be a-z, A-Z,
0-9, with a length of 9``, error code 3280)."""
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def mistral_tool_call_id(original: str) -> str:
    """A Mistral-valid id for ``original``: itself if already valid, else a stable hash.

    The mapping is deterministic, so an assistant call and the tool result answering it,
    sent in different requests, get the same id. Ids Mistral generated are already valid
    and pass through unchanged, so the ids clients see and send back are Mistral's own:
    nothing needs mapping back. Nine base-62 characters give 62**9 (about 1.3e16) values.
    """
    if TOOL_CALL_ID.fullmatch(original):
        return original
    number = int.from_bytes(hashlib.sha256(original.encode()).digest()[:8], "big") % 62**9
    digits = []
    for _ in range(9):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(digits)


def build_body(request: ChatRequest, model: str) -> dict[str, Any]:
    """The JSON body for ``model``.

    Raises:
        InvalidRequestError: the request cannot be said in Mistral's terms.
    """
    body: dict[str, Any] = {"model": model, "messages": _messages(request.messages)}
    for field in ("temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty"):
        value = getattr(request, field)
        if value is not None:
            body[field] = value
    if request.n is not None:
        body["n"] = request.n
    if request.logprobs:
        body["logprobs"] = True
        if request.top_logprobs is not None:
            body["top_logprobs"] = request.top_logprobs
    if request.seed is not None:
        body["random_seed"] = request.seed
    if request.stop:
        body["stop"] = list(request.stop)
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
    choice = _tool_choice(request)
    if choice is not None:
        body["tool_choice"] = choice
    if request.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    fmt = _response_format(request.response_format)
    if fmt is not None:
        body["response_format"] = fmt
    # Mistral puts usage in the last chunk by itself: no stream_options to ask for it.
    body["stream"] = request.stream
    return body


def _messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        role = "system" if message.role == "developer" else message.role
        item: dict[str, Any] = {"role": role}
        if role in ("user", "tool"):
            item["content"] = _content(message, param, images=True)
        elif message.content is not None:
            item["content"] = _content(message, param, images=False)
        if message.tool_calls:
            if not item.get("content"):
                # Mistral wants content or tool_calls on an assistant turn, not an empty both.
                item.pop("content", None)
            item["tool_calls"] = [
                {
                    "id": mistral_tool_call_id(call.id),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments or "{}"},
                }
                for call in message.tool_calls
            ]
            names.update((call.id, call.name) for call in message.tool_calls)
        if role == "tool":
            if message.tool_call_id is None:
                raise InvalidRequestError(
                    "A tool message needs the tool_call_id it answers.",
                    param=f"{param}.tool_call_id",
                )
            item["tool_call_id"] = mistral_tool_call_id(message.tool_call_id)
            name = names.get(message.tool_call_id) or message.name
            if name:
                item["name"] = name
        out.append(item)
    return out


def _content(message: Message, param: str, *, images: bool) -> str | list[dict[str, Any]]:
    if isinstance(message.content, str):
        return message.content
    parts = []
    for j, part in enumerate(message.parts()):
        at = f"{param}.content[{j}]"
        if isinstance(part, Image) and not images:
            raise InvalidRequestError(
                f"Mistral accepts images only in user and tool messages, not {message.role}.",
                param=at,
            )
        parts.append(_part(part, at))
    return parts


def _part(part: Part, param: str) -> dict[str, Any]:
    match part:
        case Text(text=text):
            return {"type": "text", "text": text}
        case Image(url=url, detail=detail, inline=inline):
            if inline is not None:  # a checked, canonical data URI: written unscanned
                url = verbatim(url)
            # The documented form is a bare string (a data URI or an http(s) URL, which
            # Mistral fetches itself); the object form is only needed to carry ``detail``.
            return {
                "type": "image_url",
                "image_url": url if detail is None else {"url": url, "detail": detail},
            }
        case Audio(data=data):
            return {"type": "input_audio", "input_audio": data}
        case Video():
            raise UnsupportedCapabilityError("Mistral chat does not accept video.", param=param)
        case File():
            raise UnsupportedCapabilityError("Mistral chat does not accept files.", param=param)


def _tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _tool_choice(request: ChatRequest) -> str | dict[str, Any] | None:
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        return {"type": "function", "function": {"name": choice.name}}
    # "any" is Mistral's word for "required" (newer models accept both; older ones only any).
    return {"required": "any"}.get(choice, choice) if choice is not None else None


def _response_format(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return {"type": "json_object"}
    spec = response_format.json_schema or {}
    inner = spec.get("schema")
    # OpenAI's {"name", "schema", "strict", "description"} is Mistral's shape; a bare schema
    # is wrapped, since Mistral requires the name.
    schema: dict[str, Any] = {
        "name": spec.get("name") if isinstance(spec.get("name"), str) else "response",
        "schema": inner if isinstance(inner, dict) else spec,
    }
    for key in ("strict", "description"):
        if isinstance(inner, dict) and spec.get(key) is not None:
            schema[key] = spec[key]
    return {"type": "json_schema", "json_schema": schema}
