"""Building Cohere ``/v2/chat`` bodies: messages, image parts, tools and options.

Private to ``providers.cohere``, whose module docstring lists the translation choices.
"""

from __future__ import annotations

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

__all__ = ["MAX_P", "MIN_P", "build_body"]

MIN_P = 0.01
MAX_P = 0.99
"""Cohere's documented range for ``p``; OpenAI clients often send ``top_p: 1``."""


def build_body(request: ChatRequest, model: str) -> dict[str, Any]:
    """The JSON body for ``model``.

    Raises:
        InvalidRequestError: the request cannot be said in Cohere's terms.
    """
    if request.n is not None and request.n > 1:
        raise UnsupportedCapabilityError(
            "Cohere returns one choice per request; n must be 1.", param="n"
        )
    body: dict[str, Any] = {"model": model, "messages": _messages(request.messages)}
    tools, choice = _tools(request)
    if tools:
        body["tools"] = tools
        offered = {tool["function"]["name"] for tool in tools}
        if any(tool.strict for tool in request.tools or () if tool.name in offered):
            body["strict_tools"] = True
    if choice is not None:
        body["tool_choice"] = choice
    fmt = _response_format(request.response_format)
    if fmt is not None:
        body["response_format"] = fmt
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    for field in ("temperature", "seed", "frequency_penalty", "presence_penalty"):
        value = getattr(request, field)
        if value is not None:
            body[field] = value
    if request.top_p is not None:
        # 1.0 (no nucleus cut) is refused by Cohere; 0.99 is the closest it accepts.
        body["p"] = min(max(request.top_p, MIN_P), MAX_P)
    if request.logprobs:
        body["logprobs"] = True
    body["stream"] = request.stream
    return body


def _messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        match message.role:
            case "system" | "developer":
                out.append({"role": "system", "content": _text_content(message, param)})
            case "user":
                out.append({"role": "user", "content": _user_content(message, param)})
            case "assistant":
                out.append(_assistant(message, param))
            case "tool":
                out.append(_tool_result(message, param))
    return out


def _user_content(message: Message, param: str) -> str | list[dict[str, Any]]:
    if isinstance(message.content, str):
        return message.content
    return [_part(part, f"{param}.content[{j}]") for j, part in enumerate(message.parts())]


def _part(part: Part, param: str) -> dict[str, Any]:
    match part:
        case Text(text=text):
            return {"type": "text", "text": text}
        case Image(url=url, detail=detail):
            # Inline images are already canonical data URIs with the sniffed MIME type, and
            # Cohere fetches http(s) URLs itself: the URL goes through as it is.
            image: dict[str, Any] = {"url": verbatim(url) if part.inline is not None else url}
            if detail is not None:
                image["detail"] = detail
            return {"type": "image_url", "image_url": image}
        case Audio():
            raise UnsupportedCapabilityError("Cohere does not accept audio.", param=param)
        case Video():
            raise UnsupportedCapabilityError("Cohere does not accept video.", param=param)
        case File():
            raise UnsupportedCapabilityError("Cohere chat does not accept files.", param=param)


def _texts(message: Message, param: str) -> list[str]:
    texts = []
    for j, part in enumerate(message.parts()):
        if not isinstance(part, Text):
            raise InvalidRequestError(
                f"Cohere accepts only text in {message.role} messages.",
                param=f"{param}.content[{j}]",
            )
        texts.append(part.text)
    return texts


def _text_content(message: Message, param: str) -> str | list[dict[str, Any]]:
    if isinstance(message.content, str):
        return message.content
    return [{"type": "text", "text": text} for text in _texts(message, param)]


def _assistant(message: Message, param: str) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant"}
    text = "".join(_texts(message, param))
    if message.tool_calls:
        # Cohere's turn that calls tools carries its reasoning as ``tool_plan``, not content.
        if text:
            out["tool_plan"] = text
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments or "{}"},
            }
            for call in message.tool_calls
        ]
    elif message.content is not None:
        out["content"] = _text_content(message, param)
    return out


def _tool_result(message: Message, param: str) -> dict[str, Any]:
    if message.tool_call_id is None:
        raise InvalidRequestError(
            "A tool message needs the tool_call_id it answers.", param=f"{param}.tool_call_id"
        )
    for j, part in enumerate(message.parts()):
        if not isinstance(part, Text):
            raise UnsupportedCapabilityError(
                "Cohere tool results hold text only.", param=f"{param}.content[{j}]"
            )
    return {
        "role": "tool",
        "tool_call_id": message.tool_call_id,
        "content": _text_content(message, param),
    }


def _tools(request: ChatRequest) -> tuple[list[dict[str, Any]], str | None]:
    """The tools to offer and Cohere's ``tool_choice`` (REQUIRED or NONE; absent is auto)."""
    tools = request.tools or ()
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        # No named choice on Cohere: offering only that tool and requiring a call forces it.
        named = [tool for tool in tools if tool.name == choice.name]
        if not named:
            raise InvalidRequestError(
                f"tool_choice names {choice.name!r}, which is not in tools.", param="tool_choice"
            )
        return [_tool(named[0])], "REQUIRED"
    if not tools:
        return [], None
    mapped = {"required": "REQUIRED", "none": "NONE"}.get(choice or "")
    return [_tool(tool) for tool in tools], mapped


def _tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    # Cohere requires ``parameters``, even for a tool without any.
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _response_format(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    if response_format is None or response_format.type == "text":
        return None
    out: dict[str, Any] = {"type": "json_object"}
    spec = response_format.json_schema
    if response_format.type == "json_schema" and spec:
        # OpenAI wraps the schema as {"name", "schema", "strict"}; Cohere wants the schema.
        inner = spec.get("schema")
        out["json_schema"] = inner if isinstance(inner, dict) else spec
    return out
