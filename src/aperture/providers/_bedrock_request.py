"""The Converse request body for a canonical chat request (Bedrock ``Converse``/``ConverseStream``).

Translation choices, in one place:

- ``system`` and ``developer`` messages, wherever they appear, become top-level ``system``
  blocks, one per message: Converse has no system turn.
- ``tool`` messages become ``toolResult`` blocks in a user turn; assistant ``tool_calls``
  become ``toolUse`` blocks whose ``input`` is the parsed JSON arguments.
- Consecutive turns of the same role are merged (Bedrock wants user/assistant alternation),
  and inside a user turn the ``toolResult`` blocks come first, answering the previous
  turn's ``toolUse`` before anything else. Blank text blocks are dropped: Bedrock refuses
  them ("The text field in the ContentBlock object ... is blank").
- Images travel as bytes (base64 in JSON) with the lowercase ``format`` Bedrock's enum
  wants, taken from the sniffed type. Bedrock cannot fetch URLs: the gateway's ``auto``
  and ``fetch`` URL policies download them first, so a URL that still arrives is refused.
- Bedrock rejects ``toolUse``/``toolResult`` blocks without a ``toolConfig``: when the
  history holds tool calls but the request declares no tools, the tools the history used
  are declared with an open object schema.
- ``tool_choice: none`` has no Converse equivalent: the tools are left out (unless the
  history needs them declared). ``required`` is ``any``.
- ``response_format: json_schema`` becomes ``outputConfig.textFormat`` (native structured
  output, model-dependent on Bedrock); ``json_object`` has no native form and is emulated
  with an instruction appended to ``system``.
- Cache breakpoints (canonical ``CacheMark``, Anthropic's ``cache_control``) become
  ``cachePoint`` blocks right after the system block, content block, tool result, tool call
  or tool definition that carried them, where Converse takes them.
- Canonical ``reasoning`` goes in ``additionalModelRequestFields``, where Converse passes
  model-specific fields through: for Claude, Anthropic's own ``thinking`` (the same budget
  and ``maxTokens`` rules as the ``anthropic`` kind, ``_anthropic_request.thinking``); for
  Amazon Nova, ``reasoningConfig`` with the effort as ``maxReasoningEffort``. An assistant
  message's signed thoughts go back as ``reasoningContent`` blocks opening its turn.
- ``seed``, ``presence_penalty``, ``frequency_penalty``, ``user`` and
  ``parallel_tool_calls`` have no Converse field and are dropped; ``n > 1`` is refused.
- ``extra`` (top-level fields of the client's OpenAI dialect) is NOT forwarded: Converse
  is not an OpenAI wire format and answers unknown fields with a ValidationException.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from aperture.errors import (
    ImageUrlNotSupportedError,
    InvalidRequestError,
    UnsupportedCapabilityError,
    UnsupportedImageFormatError,
)
from aperture.media.datauri import MIME_ALIASES, parse_data_uri
from aperture.model import (
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
from aperture.providers._anthropic_request import thinking as anthropic_thinking
from aperture.providers._json_body import verbatim

__all__ = ["IMAGE_FORMATS", "JSON_INSTRUCTION", "converse_body"]

IMAGE_FORMATS: Mapping[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
"""Sniffed MIME type -> Bedrock ``ImageFormat``: exactly the lowercase enum values."""
JSON_INSTRUCTION = (
    "Respond with a single JSON object and nothing else: no prose before or after it and no "
    "Markdown code fences."
)
"""Appended to ``system`` for ``json_object``, which Converse cannot enforce natively."""

_OPEN_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}}


@dataclass(slots=True)
class _Turn:
    role: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _History:
    system: list[dict[str, Any]] = field(default_factory=list)
    turns: list[_Turn] = field(default_factory=list)
    tool_names: list[str] = field(default_factory=list)
    """Names of tools the history called, in order of first use."""
    has_tool_blocks: bool = False


def converse_body(request: ChatRequest, model: str = "") -> dict[str, Any]:
    """The JSON body for ``model`` (the ``modelId``, which travels in the URL)."""
    if request.n is not None and request.n > 1:
        raise UnsupportedCapabilityError(
            "Bedrock returns one choice per request; n must be 1.", param="n"
        )
    history = _conversation(request.messages)
    if _wants_instruction(request.response_format):
        history.system.append({"text": JSON_INSTRUCTION})
    if request.cache is not None and history.turns and history.turns[-1].blocks:
        # Automatic caching: Converse has no such field, so the point goes after the last block.
        _cached(history.turns[-1].blocks[-1], request.cache)
    body: dict[str, Any] = {
        "messages": [{"role": t.role, "content": _points(t.blocks)} for t in history.turns]
    }
    if history.system:
        body["system"] = _points(history.system)
    fields, max_tokens = _reasoning_fields(request, model)
    inference = _inference(request, max_tokens)
    if inference:
        body["inferenceConfig"] = inference
    tool_config = _tool_config(request, history)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    output = _output_config(request.response_format)
    if output is not None:
        body["outputConfig"] = output
    if fields:
        body["additionalModelRequestFields"] = fields
    # request.extra is deliberately not forwarded (OpenAI-dialect extras; see module doc).
    return body


# ---------------------------------------------------------------------------------------------
# Turns


def _conversation(messages: tuple[Message, ...]) -> _History:
    history = _History()
    for i, message in enumerate(messages):
        if message.role in ("system", "developer"):
            history.system.extend(_system_blocks(message, i))
            continue
        if message.role == "assistant":
            role, blocks = "assistant", _assistant_blocks(message, i, history)
        elif message.role == "tool":
            role, blocks = "user", [_tool_result(message, i)]
            history.has_tool_blocks = True
        else:
            role, blocks = "user", _blocks(message.parts(), f"messages[{i}]", allow_images=True)
        if not blocks:
            continue
        if history.turns and history.turns[-1].role == role:
            history.turns[-1].blocks.extend(blocks)
        else:
            history.turns.append(_Turn(role, blocks))
    if not history.turns:
        raise InvalidRequestError(
            "Bedrock needs at least one user message with content.", param="messages"
        )
    if history.turns[0].role != "user":
        raise InvalidRequestError(
            "Bedrock needs the conversation to start with a user message, after any system "
            "messages.",
            param="messages",
        )
    for turn in history.turns:
        if turn.role == "user":
            # Stable: tool results first, everything else after, each in the client's order.
            turn.blocks.sort(key=lambda block: "toolResult" not in block)
    return history


def _system_blocks(message: Message, i: int) -> list[dict[str, Any]]:
    """One system block per message, or one per part when any part marks a cache point."""
    texts: list[str] = []
    blocks: list[dict[str, Any]] = []
    marked = any(isinstance(part, Text) and part.cache for part in message.parts())
    for j, part in enumerate(message.parts()):
        if not isinstance(part, Text):
            raise InvalidRequestError(
                f"{message.role.capitalize()} messages may only hold text for Bedrock.",
                param=f"messages[{i}].content[{j}]",
            )
        if part.text.strip():
            texts.append(part.text)
            if marked:
                blocks.append(_cached({"text": part.text}, part.cache))
    if marked:
        return blocks
    return [{"text": "\n\n".join(texts)}] if texts else []


def _cached(block: dict[str, Any], mark: CacheMark | None) -> dict[str, Any]:
    """Notes a cache point on the block; ``_points`` moves it to a block of its own once the
    turn's blocks are in their final order."""
    if mark is not None:
        point = {"type": "default"}
        if mark.ttl is not None:
            point["ttl"] = mark.ttl
        block["cachePoint"] = point
    return block


def _points(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Splits each noted cache point into the ``cachePoint`` block that follows its block:
    every Converse block is a union holding exactly one member."""
    if not any("cachePoint" in block for block in blocks):
        return blocks
    out: list[dict[str, Any]] = []
    for block in blocks:
        point = block.pop("cachePoint", None)
        out.append(block)
        if point is not None:
            out.append({"cachePoint": point})
    return out


def _inference(request: ChatRequest, max_tokens: int | None) -> dict[str, Any]:
    inference: dict[str, Any] = {}
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    if request.top_p is not None:
        inference["topP"] = request.top_p
    stops = [stop for stop in request.stop or () if stop]  # Bedrock: NonEmptyString
    if stops:
        inference["stopSequences"] = stops
    return inference


def _reasoning_fields(request: ChatRequest, model: str) -> tuple[dict[str, Any], int | None]:
    """``additionalModelRequestFields`` for the request's reasoning, and ``maxTokens``."""
    reasoning = request.reasoning
    if reasoning is None:
        return {}, request.max_tokens
    if "anthropic.claude" in model:
        thinking, max_tokens = anthropic_thinking(request, request.max_tokens)
        if thinking is None:
            return {}, request.max_tokens
        # Only a budget needs room made for it; Bedrock's own default stands otherwise.
        return {"thinking": thinking}, (
            max_tokens if thinking["type"] == "enabled" else request.max_tokens
        )
    if "amazon.nova" in model and reasoning.enabled:
        level = reasoning.level if reasoning.level in ("low", "medium", "high") else "high"
        config = {"type": "enabled", "maxReasoningEffort": level}
        return {"reasoningConfig": config}, request.max_tokens
    return {}, request.max_tokens


def _thought(thought: Thought) -> dict[str, Any]:
    if thought.redacted is not None:
        return {"reasoningContent": {"redactedContent": thought.redacted}}
    text = {"text": thought.text, "signature": thought.signature}
    return {"reasoningContent": {"reasoningText": text}}


def _assistant_blocks(message: Message, i: int, history: _History) -> list[dict[str, Any]]:
    # Signed reasoning opens the turn, as Claude requires; unsigned thoughts are left out.
    blocks = [_thought(t) for t in message.reasoning or () if t.signature or t.redacted]
    blocks += _blocks(message.parts(), f"messages[{i}]", allow_images=False)
    for k, call in enumerate(message.tool_calls or ()):
        param = f"messages[{i}].tool_calls[{k}].function.arguments"
        use = {"toolUseId": call.id, "name": call.name, "input": _input(call.arguments, param)}
        blocks.append(_cached({"toolUse": use}, call.cache))
        history.has_tool_blocks = True
        if call.name not in history.tool_names:
            history.tool_names.append(call.name)
    return blocks


def _input(arguments: str, param: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}  # a call without arguments; Bedrock still wants an object
    try:
        value = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        raise InvalidRequestError(
            "Tool call arguments must be valid JSON to send them to Bedrock.", param=param
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            "Tool call arguments must be a JSON object to send them to Bedrock.", param=param
        )
    return value


def _tool_result(message: Message, i: int) -> dict[str, Any]:
    if message.tool_call_id is None:
        raise InvalidRequestError(
            "A tool message needs the tool_call_id it answers.", param=f"messages[{i}].tool_call_id"
        )
    content = _blocks(message.parts(), f"messages[{i}]", allow_images=True)
    for block in content:
        block.pop("cachePoint", None)  # ToolResultContentBlock has no cachePoint member
    result = {"toolUseId": message.tool_call_id, "content": content, "status": "success"}
    return _cached({"toolResult": result}, message.cache)


def _blocks(parts: tuple[Part, ...], param: str, *, allow_images: bool) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        at = f"{param}.content[{j}]"
        match part:
            case Text(text=text, cache=mark):
                if text.strip():  # Bedrock refuses blank text blocks
                    blocks.append(_cached({"text": text}, mark))
            case Image() if allow_images:
                blocks.append(_cached({"image": _image(part, at)}, part.cache))
            case Image():
                raise InvalidRequestError(
                    "Bedrock accepts images only in user and tool messages.", param=at
                )
            case File(inline=inline) if inline is not None and allow_images:
                blocks.append(_cached({"document": _document(part, j)}, part.cache))
            case File():
                raise UnsupportedCapabilityError(
                    "Bedrock accepts documents only as PDF data in user messages.", param=at
                )
            case Audio():
                raise UnsupportedCapabilityError("Bedrock does not accept audio here.", param=at)
            case Video():
                raise UnsupportedCapabilityError("Bedrock does not accept video here.", param=at)
    return blocks


# Converse's DocumentBlock.name: alphanumerics, single whitespace, hyphens, parentheses and
# square brackets (botocore's service model; it is also a prompt-injection surface).
_NAME_DROP = re.compile(r"[^A-Za-z0-9\s\-()\[\]]+")


def _document(file: File, index: int) -> dict[str, Any]:
    stem = (file.filename or "").rsplit(".", 1)[0]
    name = " ".join(_NAME_DROP.sub(" ", stem).split())[:200] or f"document-{index + 1}"
    # Only checked documents get here (inline set): strict base64, written unscanned.
    if file.inline is None or file.file_data is None:
        raise ValueError("not an inline document")
    data = verbatim(file.file_data, file.inline.payload_offset)
    return {"format": "pdf", "name": name, "source": {"bytes": data}}


def _image(image: Image, param: str) -> dict[str, Any]:
    at = f"{param}.image_url.url"
    if image.inline is not None:
        # Checked strict base64: written into the body unscanned.
        mime, data = image.inline.mime, verbatim(image.url, image.inline.payload_offset)
    elif image.is_data_uri:
        # Intake normally sets ``inline``; a bare data URI is still translated faithfully.
        uri = parse_data_uri(image.url, param=at)
        mime, data = uri.mime, image.url[uri.payload_offset :]
    else:
        raise ImageUrlNotSupportedError(
            "Bedrock cannot fetch image URLs: configure this model with url_policy 'fetch' or "
            "'auto' so the gateway downloads the image, or send it as a data URI.",
            param=at,
        )
    fmt = IMAGE_FORMATS.get(MIME_ALIASES.get(mime, mime))
    if fmt is None:
        raise UnsupportedImageFormatError(
            f"Bedrock accepts PNG, JPEG, GIF and WebP images, not {mime}.", param=at
        )
    return {"format": fmt, "source": {"bytes": data}}


# ---------------------------------------------------------------------------------------------
# Tools and output


def _tool_config(request: ChatRequest, history: _History) -> dict[str, Any] | None:
    choice = request.tool_choice
    offered = bool(request.tools) and choice != "none"
    if request.tools and (offered or history.has_tool_blocks):
        # With tool_choice none the tools are still declared when the history needs them.
        tools = [_tool(t) for t in request.tools]
    elif history.tool_names:
        # Bedrock refuses tool blocks without a toolConfig: declare what the history used.
        tools = [_tool(Tool(name)) for name in history.tool_names]
    else:
        return None
    config: dict[str, Any] = {"tools": _points(tools)}
    if offered:
        if isinstance(choice, NamedToolChoice):
            config["toolChoice"] = {"tool": {"name": choice.name}}
        elif choice == "required":
            config["toolChoice"] = {"any": {}}
        elif choice == "auto":
            config["toolChoice"] = {"auto": {}}
    return config


def _tool(tool: Tool) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": tool.name}
    if tool.description:  # NonEmptyString
        spec["description"] = tool.description
    # Bedrock requires an object schema even for a tool that takes no parameters.
    spec["inputSchema"] = {"json": tool.parameters or dict(_OPEN_SCHEMA)}
    if tool.strict:
        spec["strict"] = True
    return _cached({"toolSpec": spec}, tool.cache)


def _wants_instruction(response_format: ResponseFormat | None) -> bool:
    return (
        response_format is not None
        and _schema(response_format) is None
        and (response_format.type != "text")
    )


def _schema(response_format: ResponseFormat) -> dict[str, Any] | None:
    spec = response_format.json_schema
    if response_format.type != "json_schema" or not spec:
        return None
    # OpenAI wraps the schema as {"name", "schema", "strict"}; tolerate a bare schema.
    inner = spec.get("schema")
    return inner if isinstance(inner, dict) else spec


def _output_config(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    if response_format is None:
        return None
    schema = _schema(response_format)
    if schema is None:
        return None
    spec = response_format.json_schema or {}
    definition: dict[str, Any] = {"schema": msgspec.json.encode(schema).decode()}
    for key in ("name", "description"):
        value = spec.get(key)
        if isinstance(value, str) and value:
            definition[key] = value
    structure = {"jsonSchema": definition}
    return {"textFormat": {"type": "json_schema", "structure": structure}}
