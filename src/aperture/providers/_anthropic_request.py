"""Canonical request -> Anthropic Messages body. Pure; the adapter in ``anthropic`` uses it.

Split from the adapter to keep each module about one thing: this one owns turns, content
blocks, tools and the JSON-mode instruction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from aperture.errors import (
    InvalidRequestError,
    UnsupportedCapabilityError,
    UnsupportedImageFormatError,
)
from aperture.media.datauri import MIME_ALIASES, parse_data_uri
from aperture.model import (
    EFFORT_BUDGETS,
    Audio,
    CacheMark,
    ChatRequest,
    File,
    Image,
    Message,
    NamedToolChoice,
    Part,
    ResponseFormat,
    Text,
    Thought,
    Tool,
    Video,
)
from aperture.providers._anthropic_spec import ANTHROPIC_IMAGES
from aperture.providers._json_body import verbatim

IMAGE_MEDIA_TYPES = ANTHROPIC_IMAGES.accepted

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "IMAGE_MEDIA_TYPES",
    "compact",
    "conversation",
    "json_instruction",
    "messages_body",
    "system_value",
    "thinking",
    "tool",
    "tool_choice",
]


def messages_body(request: ChatRequest, model: str) -> dict[str, Any]:
    """The Messages body for ``request`` but ``stream``; ``extra`` is never forwarded (those
    are OpenAI-dialect extras, and Anthropic answers unknown fields with a 400)."""
    system, turns = conversation(request.messages)
    instruction = json_instruction(request.response_format)
    if instruction is not None:
        system.append({"type": "text", "text": instruction})
    thinking_field, max_tokens = thinking(request, request.max_tokens)
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens}
    if system:
        body["system"] = system_value(system)
    body["messages"] = turns
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.tools:
        body["tools"] = [tool(t) for t in request.tools]
        choice = tool_choice(request)
        if choice is not None:
            body["tool_choice"] = choice
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    if thinking_field is not None:
        body["thinking"] = thinking_field
    if request.cache is not None:
        body["cache_control"] = _cached({}, request.cache)["cache_control"]
    return body


@dataclass(slots=True)
class _Turn:
    role: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def conversation(
    messages: tuple[Message, ...],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The system text blocks and the alternating user/assistant turns."""
    system: list[dict[str, Any]] = []
    turns: list[_Turn] = []
    for i, message in enumerate(messages):
        if message.role in ("system", "developer"):
            system.extend(_system_blocks(message, i))
            continue
        role = "assistant" if message.role == "assistant" else "user"
        if message.role == "assistant":
            blocks = _assistant_blocks(message, i)
        elif message.role == "tool":
            blocks = [_tool_result(message, i)]
        else:
            blocks = _blocks(message.parts(), f"messages[{i}]", allow_images=True)
        if not blocks:
            continue
        if turns and turns[-1].role == role:
            turns[-1].blocks.extend(blocks)
        else:
            turns.append(_Turn(role, blocks))
    if not turns:
        raise InvalidRequestError(
            "Anthropic needs at least one user message with content.", param="messages"
        )
    if turns[0].role != "user":
        raise InvalidRequestError(
            "Anthropic needs the conversation to start with a user message, after any "
            "system messages.",
            param="messages",
        )
    for turn in turns:
        if turn.role == "user":
            # Stable: tool results first, everything else after, each in the client's order.
            turn.blocks.sort(key=lambda block: block["type"] != "tool_result")
    return system, [{"role": turn.role, "content": turn.blocks} for turn in turns]


def system_value(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """The ``system`` field: a string, unless a block carries a cache breakpoint, which only
    the list form can hold."""
    if any("cache_control" in block for block in blocks):
        return blocks
    return "\n\n".join(block["text"] for block in blocks)


def _system_blocks(message: Message, i: int) -> list[dict[str, Any]]:
    blocks = []
    for j, part in enumerate(message.parts()):
        if not isinstance(part, Text):
            raise InvalidRequestError(
                f"{message.role.capitalize()} messages may only hold text for Anthropic.",
                param=f"messages[{i}].content[{j}]",
            )
        if part.text:
            blocks.append(_cached({"type": "text", "text": part.text}, part.cache))
    return blocks


def _cached(block: dict[str, Any], mark: CacheMark | None) -> dict[str, Any]:
    """The block with the client's ``cache_control`` put back exactly as it was sent."""
    if mark is not None:
        control = {"type": mark.type}
        if mark.ttl is not None:
            control["ttl"] = mark.ttl
        block["cache_control"] = control
    return block


def _assistant_blocks(message: Message, i: int) -> list[dict[str, Any]]:
    # Thinking opens the turn, as Anthropic requires; unsigned thoughts (another provider's
    # summaries) cannot be verified by Anthropic and are left out.
    blocks = [_thought(t) for t in message.reasoning or () if t.signature or t.redacted]
    blocks += _blocks(message.parts(), f"messages[{i}]", allow_images=False)
    for k, call in enumerate(message.tool_calls or ()):
        block = {
            "type": "tool_use",
            "id": call.id,
            "name": call.name,
            "input": _tool_input(call.arguments, f"messages[{i}].tool_calls[{k}]"),
        }
        blocks.append(_cached(block, call.cache))
    return blocks


def _thought(thought: Thought) -> dict[str, Any]:
    if thought.redacted is not None:
        return {"type": "redacted_thinking", "data": thought.redacted}
    return {"type": "thinking", "thinking": thought.text, "signature": thought.signature}


MIN_THINKING_BUDGET = 1024
"""Anthropic refuses a smaller ``budget_tokens``."""


def thinking(request: ChatRequest, max_tokens: int | None) -> tuple[dict[str, Any] | None, int]:
    """The ``thinking`` field and the ``max_tokens`` to send with it.

    A budget the client gave goes as sent (Anthropic judges it). An effort becomes its
    budget (``aperture.model.reasoning``), capped below the client's ``max_tokens``; with no
    ``max_tokens``, the answer gets ``DEFAULT_MAX_TOKENS`` on top of the budget. A request
    whose last assistant turn called tools without its signed thinking (a client that cannot
    carry signatures) is sent without thinking: Anthropic would refuse it otherwise.
    """
    reasoning = request.reasoning
    default = max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS
    if reasoning is None:
        return None, default
    if not reasoning.enabled:
        return {"type": "disabled"}, default
    if _unsigned_tool_turn(request.messages):
        return None, default
    if reasoning.budget_tokens is not None:
        return {"type": "enabled", "budget_tokens": reasoning.budget_tokens}, default
    if reasoning.effort is None:
        return {"type": "adaptive"}, default
    budget = EFFORT_BUDGETS.get(reasoning.effort, MIN_THINKING_BUDGET)
    if max_tokens is None:
        return {"type": "enabled", "budget_tokens": budget}, budget + DEFAULT_MAX_TOKENS
    budget = min(budget, max_tokens - 1)
    if budget < MIN_THINKING_BUDGET:
        raise InvalidRequestError(
            f"Anthropic thinks with at least {MIN_THINKING_BUDGET} tokens, which must be fewer "
            f"than max_tokens: ask for more than {MIN_THINKING_BUDGET} tokens to reason.",
            param="max_tokens",
        )
    return {"type": "enabled", "budget_tokens": budget}, max_tokens


def _unsigned_tool_turn(messages: tuple[Message, ...]) -> bool:
    for message in reversed(messages):
        if message.role == "assistant":
            signed = any(t.signature or t.redacted for t in message.reasoning or ())
            return bool(message.tool_calls) and not signed
    return False


DEFAULT_MAX_TOKENS = 4096
"""Sent when the client gave no ``max_tokens``: Anthropic requires the field."""


def _tool_input(arguments: str, param: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}  # a call without arguments; Anthropic still wants an object
    try:
        value = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        raise InvalidRequestError(
            "Tool call arguments must be valid JSON to send them to Anthropic.",
            param=f"{param}.function.arguments",
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            "Tool call arguments must be a JSON object to send them to Anthropic.",
            param=f"{param}.function.arguments",
        )
    return value


def _tool_result(message: Message, i: int) -> dict[str, Any]:
    if message.tool_call_id is None:
        raise InvalidRequestError(
            "A tool message needs the tool_call_id it answers.", param=f"messages[{i}].tool_call_id"
        )
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    if isinstance(message.content, str):
        if message.content:
            block["content"] = message.content
    else:
        content = _blocks(message.parts(), f"messages[{i}]", allow_images=True)
        if content:
            block["content"] = content
    return _cached(block, message.cache)


def _blocks(parts: tuple[Part, ...], param: str, *, allow_images: bool) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        at = f"{param}.content[{j}]"
        match part:
            case Text(text=text, cache=mark):
                if text.strip():  # Anthropic rejects empty and whitespace-only text blocks
                    blocks.append(_cached({"type": "text", "text": text}, mark))
            case Image() if allow_images:
                blocks.append(_cached(_image(part, at), part.cache))
            case Image():
                raise InvalidRequestError(
                    "Anthropic accepts images only in user and tool messages.", param=at
                )
            case File():
                blocks.append(_cached(_document(part, at), part.cache))
            case Audio():
                raise UnsupportedCapabilityError("Anthropic does not accept audio.", param=at)
            case Video():
                raise UnsupportedCapabilityError("Anthropic does not accept video.", param=at)
    return blocks


def _image(image: Image, param: str) -> dict[str, Any]:
    if image.inline is not None:
        # Checked strict base64: written into the body unscanned, and never sliced off.
        mime, data = image.inline.mime, verbatim(image.url, image.inline.payload_offset)
    elif image.is_data_uri:
        # Intake normally sets ``inline``; a bare data URI is still translated faithfully.
        uri = parse_data_uri(image.url, param=f"{param}.image_url.url")
        mime, data = uri.mime, image.url[uri.payload_offset :]
    else:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    # Declared types some clients send that Anthropic would refuse; the bytes decide anyway.
    mime = MIME_ALIASES.get(mime, mime)
    if mime not in IMAGE_MEDIA_TYPES:
        raise UnsupportedImageFormatError(
            f"Anthropic accepts JPEG, PNG, GIF and WebP images, not {mime}.",
            param=f"{param}.image_url.url",
        )
    return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}


def _document(file: File, param: str) -> dict[str, Any]:
    if file.inline is not None and file.file_data is not None:
        source = {
            "type": "base64",
            "media_type": file.inline.mime,
            "data": verbatim(file.file_data, file.inline.payload_offset),
        }
        return {"type": "document", "source": source}
    if file.url is not None:
        return {"type": "document", "source": {"type": "url", "url": file.url}}
    data = file.file_data
    if data is not None and data[:5].lower() == "data:":
        uri = parse_data_uri(data, param=f"{param}.file.file_data")
        if uri.mime == "application/pdf":
            source = {"type": "base64", "media_type": uri.mime, "data": data[uri.payload_offset :]}
            return {"type": "document", "source": source}
    raise UnsupportedCapabilityError(
        "Anthropic accepts files only as PDF data URIs in file_data.", param=param
    )


def tool(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    # Anthropic requires an object schema even for a tool that takes no parameters.
    out["input_schema"] = tool.parameters or {"type": "object", "properties": {}}
    return _cached(out, tool.cache)


def tool_choice(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    serial = request.parallel_tool_calls is False
    out: dict[str, Any]
    if isinstance(choice, NamedToolChoice):
        out = {"type": "tool", "name": choice.name}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "auto" or serial:
        out = {"type": "auto"}
    else:
        return None
    if serial:
        out["disable_parallel_tool_use"] = True
    return out


def json_instruction(response_format: ResponseFormat | None) -> str | None:
    """JSON mode for Anthropic, which has no ``response_format`` field.

    Emulated by appending this instruction to the system prompt. It asks, it cannot enforce:
    the model may still wrap the object in prose, which a native JSON mode would prevent.
    """
    if response_format is None or response_format.type == "text":
        return None
    instruction = (
        "Respond with a single JSON object and nothing else: no prose before or after it "
        "and no Markdown code fences."
    )
    spec = response_format.json_schema
    if response_format.type == "json_schema" and spec:
        # OpenAI wraps the schema as {"name", "schema", "strict"}; tolerate a bare schema.
        inner = spec.get("schema")
        schema = inner if isinstance(inner, dict) else spec
        encoded = msgspec.json.encode(schema).decode()
        instruction += f" The object must conform to this JSON schema: {encoded}"
    return instruction


# ---------------------------------------------------------------------------------------------
# Responses and errors


def compact(value: Any) -> str:
    return msgspec.json.encode(value if value is not None else {}).decode()
