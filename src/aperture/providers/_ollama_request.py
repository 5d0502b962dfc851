"""Building Ollama ``/api/chat`` bodies: messages, images, tools, format and options.

Private to ``providers.ollama``, whose module docstring lists the translation choices.
"""

from __future__ import annotations

from typing import Any

import msgspec

from aperture.errors import (
    ImageUrlNotSupportedError,
    InvalidRequestError,
    UnsupportedCapabilityError,
)
from aperture.media.datauri import parse_data_uri
from aperture.model import (
    Audio,
    ChatRequest,
    File,
    Image,
    Message,
    NamedToolChoice,
    ResponseFormat,
    Text,
    Tool,
    Video,
)
from aperture.providers._json_body import verbatim

__all__ = ["build_body"]


def build_body(request: ChatRequest, model: str) -> dict[str, Any]:
    """The JSON body for ``model``; ``stream`` is always explicit (Ollama defaults to true).

    Raises:
        InvalidRequestError: the request cannot be said in Ollama's terms.
    """
    if request.n is not None and request.n > 1:
        raise UnsupportedCapabilityError(
            "Ollama returns one choice per request; n must be 1.", param="n"
        )
    body: dict[str, Any] = {
        "model": model,
        "messages": _messages(request.messages),
        "stream": request.stream,
    }
    tools = _tools(request)
    if tools:
        body["tools"] = tools
    fmt = _format(request.response_format)
    if fmt is not None:
        body["format"] = fmt
    options = _options(request)
    if options:
        body["options"] = options
    if request.logprobs:
        body["logprobs"] = True
        if request.top_logprobs is not None:
            body["top_logprobs"] = request.top_logprobs
    return body


def _messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = "system" if message.role in ("system", "developer") else message.role
        texts, images = _content(message, role, f"messages[{i}]")
        item: dict[str, Any] = {"role": role, "content": "\n".join(texts)}
        if images:
            item["images"] = images
        if message.tool_calls:
            item["tool_calls"] = [
                {
                    "function": {
                        "name": call.name,
                        "arguments": _arguments(call.arguments, f"messages[{i}].tool_calls[{k}]"),
                    }
                }
                for k, call in enumerate(message.tool_calls)
            ]
            names.update((call.id, call.name) for call in message.tool_calls)
        if role == "tool":
            name = names.get(message.tool_call_id or "") or message.name
            if name:
                item["tool_name"] = name
        out.append(item)
    return out


def _content(message: Message, role: str, param: str) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(message.parts()):
        at = f"{param}.content[{j}]"
        match part:
            case Text(text=text):
                texts.append(text)
            case Image() if role == "system":
                raise InvalidRequestError("System messages may only hold text.", param=at)
            case Image():
                images.append(_image_data(part, at))
            case Audio():
                raise UnsupportedCapabilityError("Ollama chat does not accept audio.", param=at)
            case Video():
                raise UnsupportedCapabilityError("Ollama chat does not accept video.", param=at)
            case File():
                raise UnsupportedCapabilityError("Ollama chat does not accept files.", param=at)
    return texts, images


def _image_data(image: Image, param: str) -> Any:
    """The bare base64 payload: Ollama's ``images`` entries take no ``data:`` prefix."""
    if image.inline is not None:  # checked strict base64: written into the body unscanned
        return verbatim(image.url, image.inline.payload_offset)
    if image.is_data_uri:
        # Intake normally sets ``inline``; a bare data URI is still translated faithfully.
        uri = parse_data_uri(image.url, param=f"{param}.image_url.url")
        return image.url[uri.payload_offset :]
    raise ImageUrlNotSupportedError(
        "Ollama accepts images only as base64 data, not URLs. Send the image as a data URI, "
        "or set the model's url_policy to fetch or auto so the gateway downloads it.",
        param=f"{param}.image_url.url",
    )


def _arguments(arguments: str, param: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    try:
        value = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            "Tool call arguments must be a JSON object to send them to Ollama.",
            param=f"{param}.function.arguments",
        )
    return value


def _tools(request: ChatRequest) -> list[dict[str, Any]]:
    tools = request.tools or ()
    choice = request.tool_choice
    if choice == "none":
        return []  # no tool_choice on Ollama: not offering tools is the only way to say none
    if isinstance(choice, NamedToolChoice):
        named = [tool for tool in tools if tool.name == choice.name]
        if not named:
            raise InvalidRequestError(
                f"tool_choice names {choice.name!r}, which is not in tools.", param="tool_choice"
            )
        tools = tuple(named)
    return [_tool(tool) for tool in tools]


def _tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _format(response_format: ResponseFormat | None) -> str | dict[str, Any] | None:
    if response_format is None or response_format.type == "text":
        return None
    spec = response_format.json_schema
    if response_format.type == "json_schema" and spec:
        # OpenAI wraps the schema as {"name", "schema", "strict"}; tolerate a bare schema.
        inner = spec.get("schema")
        return inner if isinstance(inner, dict) else spec
    return "json"


def _options(request: ChatRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    for field in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
        value = getattr(request, field)
        if value is not None:
            options[field] = value
    if request.stop:
        options["stop"] = list(request.stop)
    return options
