"""Reading a Converse request the way Bedrock does: schema, conversation rules, images.

Two layers, like the service: the request shape is checked against the real service model
with botocore's ``ParamValidator`` (types, required and unknown fields, minimum lengths and
values); then the constraints that validator does not check (enums, maximums, patterns) and
the conversation rules Bedrock and Claude apply (user first, alternating roles, no blank
text, tool results answering the previous turn's tool uses, ``toolConfig`` present when
tools appear) are checked here, with the service's wording where it is known.
"""

from __future__ import annotations

import binascii
import copy
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import botocore.session
import msgspec
import pybase64
from botocore.model import OperationModel
from botocore.validate import ParamValidator

from aperture.emulator.anthropic_cache import cache_split
from aperture.emulator.anthropic_errors import AnthropicError
from aperture.emulator.anthropic_request import image_tokens
from aperture.emulator.anthropic_thinking import check_sampling, read_thinking, signature_for
from aperture.emulator.bedrock_errors import validation
from aperture.emulator.describe import Seen, SeenImage
from aperture.emulator.images import ImageRejected, Rejection, inspect_base64

__all__ = [
    "IMAGE_FORMATS",
    "JSON_INSTRUCTION",
    "MAX_IMAGES",
    "MAX_IMAGE_BASE64_CHARS",
    "ConverseRequest",
    "operation",
    "parse_converse_request",
    "to_params",
]

IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
MAX_IMAGES = 20
MAX_IMAGE_BASE64_CHARS = 5 * 1024 * 1024
"""Claude on Bedrock measures its 5 MB limit on the base64 string, not the decoded bytes."""
MAX_IMAGE_SIDE = 8000
JSON_INSTRUCTION = "respond with a single json object"
"""A system prompt holding this (any case) gets the JSON answer: the emulated model obeys."""

MALFORMED = "Malformed input request, please reformat your input and try again."
MODEL_ERRORS = "The model returned the following errors: "
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
ROLES = ("user", "assistant")


@dataclass(frozen=True, slots=True)
class ConverseRequest:
    model_id: str
    seen: Seen
    input_tokens: int
    max_tokens: int | None
    stop_sequences: tuple[str, ...]
    tool_name: str | None
    """Set when ``toolChoice`` forces a call (``any`` or ``tool``): the tool the answer calls."""
    json_mode: bool
    thinking: bool = False
    """Claude was asked to think (``additionalModelRequestFields.thinking``)."""
    cache_write: int = 0
    cache_read: int = 0
    caches: bool = False
    """The request set ``cachePoint``s: the usage then reports cache reads and writes."""


@dataclass(slots=True)
class _Collector:
    images: list[SeenImage] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    asked: str = ""
    pending: tuple[str, ...] = ()
    """``toolUse`` ids of the previous assistant turn, which the next turn must answer."""
    uses_tools: bool = False
    breakpoints: list[int] = field(default_factory=list)
    """The prompt-token position of each ``cachePoint`` (see ``anthropic_cache``)."""

    def tokens(self) -> int:
        chars = sum(len(text) for text in self.texts)
        return math.ceil(chars / 4) + sum(image_tokens(i) for i in self.images)


@cache
def operation(name: str) -> OperationModel:
    """``Converse`` or ``ConverseStream`` from botocore's bedrock-runtime service model."""
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    return model.operation_model(name)


def to_params(body: Mapping[str, Any], model_id: str) -> dict[str, Any]:
    """The body in botocore's parameter form: ``modelId`` added, image bytes decoded.

    Raises:
        BedrockError: an image's bytes are not base64.
    """
    params = copy.deepcopy(dict(body))  # strings are shared, containers copied
    params["modelId"] = model_id
    for path, image in _image_blocks(params):
        source = image.get("source")
        if not isinstance(source, dict):
            continue
        data = source.get("bytes")
        if isinstance(data, str):
            try:
                source["bytes"] = pybase64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise validation(f"{path}.source.bytes: Invalid base64-encoded image.") from None
    return params


def parse_converse_request(model_id: str, body: bytes, *, stream: bool) -> ConverseRequest:
    """Validate a request body.

    Raises:
        BedrockError: what Bedrock would answer for the same body.
    """
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise validation(MALFORMED) from None
    if not isinstance(data, dict):
        raise validation(MALFORMED)
    params = to_params(data, model_id)
    shape = operation("ConverseStream" if stream else "Converse").input_shape
    assert shape is not None, "Converse operations have an input shape"
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        raise validation(report.generate_report())
    collector = _Collector()
    # Tools come first in the cached prefix; they add no tokens of their own here.
    tools = (data.get("toolConfig") or {}).get("tools") or []
    collector.breakpoints.extend(0 for tool in tools if "cachePoint" in tool)
    system = _system(collector, data.get("system") or [])
    config = data.get("inferenceConfig") or {}
    _maximum("inferenceConfig.temperature", config.get("temperature"), 1)
    _maximum("inferenceConfig.topP", config.get("topP"), 1)
    tool_name, tool_names = _tools(data.get("toolConfig"))
    for i, message in enumerate(data["messages"]):
        _message(collector, data["messages"], i, message)
    if collector.pending:
        raise _unanswered(len(data["messages"]) - 1, collector.pending)
    if collector.uses_tools and not tool_names:
        raise validation(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    if len(collector.images) > MAX_IMAGES:
        raise validation(
            f"{MODEL_ERRORS}messages: Too many images in the request: "
            f"{len(collector.images)} > {MAX_IMAGES}"
        )
    seen = Seen(
        images=tuple(collector.images),
        asked=collector.asked,
        system=" ".join(system) if system else None,
        text_chars=sum(len(text) for text in collector.texts),
    )
    thinking = _thinking(model_id, data, config, forced=tool_name is not None)
    try:
        written, read = cache_split(collector.breakpoints)
    except AnthropicError as error:
        raise validation(error.message) from None
    return ConverseRequest(
        thinking=thinking,
        model_id=model_id,
        seen=seen,
        input_tokens=collector.tokens() - written - read,
        cache_write=written,
        cache_read=read,
        caches=bool(collector.breakpoints),
        max_tokens=config.get("maxTokens"),
        stop_sequences=tuple(config.get("stopSequences") or ()),
        tool_name=tool_name,
        json_mode=_json_mode(data.get("outputConfig"), seen.system),
    )


def _thinking(
    model_id: str, data: Mapping[str, Any], config: Mapping[str, Any], *, forced: bool
) -> bool:
    """Claude on Bedrock takes Anthropic's ``thinking`` in ``additionalModelRequestFields``
    and judges it as Anthropic does; Bedrock relays the model's refusal."""
    fields = data.get("additionalModelRequestFields")
    if not isinstance(fields, dict) or "thinking" not in fields:
        return False
    _, _, model = model_id.partition("anthropic.")
    if not model:
        raise validation(f"{MODEL_ERRORS}thinking: Extra inputs are not permitted")
    try:
        thinking = read_thinking(fields, model, config.get("maxTokens"))
        if thinking is not None:
            sampling = {"temperature": config.get("temperature"), "top_p": config.get("topP")}
            check_sampling(sampling, forced_tool=forced)
    except AnthropicError as error:
        raise validation(f"{MODEL_ERRORS}{error.message}") from None
    return thinking is not None


def _aside(collector: _Collector, path: str, block: Mapping[str, Any]) -> bool:
    """Reads a block that is no part of the prompt's content (reasoning sent back, a cache
    point); False for the others."""
    if "reasoningContent" in block:
        _reasoning(f"{path}.reasoningContent", block["reasoningContent"])
        return True
    if "cachePoint" in block:
        collector.breakpoints.append(collector.tokens())
        return True
    return False


def _reasoning(path: str, block: Mapping[str, Any]) -> None:
    """A reasoning block sent back must carry the signature Claude gave it."""
    text = block.get("reasoningText")
    if isinstance(text, dict) and text.get("signature") != signature_for(text.get("text", "")):
        raise validation(f"{MODEL_ERRORS}{path}: Invalid `signature` in `thinking` block")


# ---------------------------------------------------------------------------------------------
# Constraints botocore's validator leaves to the service


def _constraint(path: str, value: object, rule: str) -> Exception:
    return validation(
        f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy "
        f"constraint: {rule}"
    )


def _enum(path: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        listed = ", ".join(sorted(allowed))
        raise _constraint(path, value, f"Member must satisfy enum value set: [{listed}]")


def _pattern(path: str, value: str, pattern: re.Pattern[str]) -> None:
    if not pattern.fullmatch(value):
        raise _constraint(
            path, value, f"Member must satisfy regular expression pattern: {pattern.pattern}"
        )


def _maximum(path: str, value: object, high: float) -> None:
    if isinstance(value, int | float) and value > high:
        raise _constraint(path, value, f"Member must have value less than or equal to {high}")


def _system(collector: _Collector, blocks: Sequence[Mapping[str, Any]]) -> list[str]:
    texts = []
    for block in blocks:
        if "text" in block:
            texts.append(block["text"])
            collector.texts.append(block["text"])
        elif "cachePoint" in block:
            collector.breakpoints.append(collector.tokens())
    return [text for text in texts if text.strip()]


def _tools(config: Mapping[str, Any] | None) -> tuple[str | None, list[str]]:
    """The tool a ``toolChoice`` forces, and every declared tool's name."""
    if config is None:
        return None, []
    names = []
    for k, tool in enumerate(config["tools"]):
        spec = tool.get("toolSpec")
        if spec is None:
            continue
        path = f"toolConfig.tools.{k}.member.toolSpec"
        _pattern(f"{path}.name", spec["name"], TOOL_NAME)
        schema = spec["inputSchema"].get("json")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise validation(
                f"{MODEL_ERRORS}tools.{k}.custom.input_schema.type: Input should be 'object'"
            )
        names.append(spec["name"])
    choice = config.get("toolChoice") or {}
    if "any" in choice:
        return (names[0] if names else None), names
    if "tool" in choice:
        name = choice["tool"]["name"]
        if name not in names:
            raise validation(f"{MODEL_ERRORS}tool_choice.name: Tool '{name}' not found in tools")
        return name, names
    return None, names


def _json_mode(config: Mapping[str, Any] | None, system: str | None) -> bool:
    text_format = (config or {}).get("textFormat")
    if text_format is not None:
        _enum("outputConfig.textFormat.type", text_format["type"], ("json_schema",))
        schema = text_format["structure"].get("jsonSchema", {}).get("schema", "")
        try:
            parsed = msgspec.json.decode(schema)
        except msgspec.DecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise validation("The provided JSON schema in outputConfig is not valid JSON.")
        return True
    return system is not None and JSON_INSTRUCTION in system.lower()


# ---------------------------------------------------------------------------------------------
# The conversation


def _message(
    collector: _Collector, messages: Sequence[Mapping[str, Any]], i: int, message: Mapping[str, Any]
) -> None:
    role = message["role"]
    _enum(f"messages.{i}.member.role", role, ROLES)
    if i == 0 and role != "user":
        raise validation(
            "A conversation must start with a user message. Try again with a conversation "
            "that starts with a user message."
        )
    if i and messages[i - 1]["role"] == role:
        raise validation(
            "A conversation must alternate between user and assistant roles. Make sure the "
            "conversation alternates between user and assistant roles and try again."
        )
    texts: list[str] = []
    ids: list[str] = []
    asks = False
    for j, block in enumerate(message["content"]):
        path = f"messages.{i}.content.{j}"
        if "toolResult" in block:
            ids.append(_tool_result(collector, f"{path}.toolResult", block["toolResult"]))
            continue
        if _aside(collector, path, block):
            continue
        asks = True
        if "text" in block:
            if not block["text"].strip():
                raise validation(
                    f"The text field in the ContentBlock object at {path} is blank. Add text "
                    "to the text field, and try again."
                )
            texts.append(block["text"])
            collector.texts.append(block["text"])
        elif "image" in block:
            if role != "user":
                raise validation(f"{path}: images are only allowed in user messages.")
            collector.images.append(_image(f"{path}.image", block["image"]))
        elif "toolUse" in block:
            ids.append(_tool_use(f"{path}.toolUse", block["toolUse"]))
    if role == "user" and asks:
        collector.asked = " ".join(texts)
    _pair(collector, i, role, tuple(ids))


def _tool_use(path: str, block: Mapping[str, Any]) -> str:
    _pattern(f"{path}.toolUseId", block["toolUseId"], TOOL_USE_ID)
    _pattern(f"{path}.name", block["name"], TOOL_NAME)
    if not isinstance(block["input"], dict):
        raise validation(f"{MODEL_ERRORS}{path}.input: Input should be a valid dictionary")
    return str(block["toolUseId"])


def _tool_result(collector: _Collector, path: str, block: Mapping[str, Any]) -> str:
    if "status" in block:
        _enum(f"{path}.status", block["status"], ("success", "error"))
    for k, item in enumerate(block["content"]):
        if "text" in item:
            collector.texts.append(item["text"])
        elif "image" in item:
            collector.images.append(_image(f"{path}.content.{k}.image", item["image"]))
    return str(block["toolUseId"])


def _pair(collector: _Collector, i: int, role: str, ids: tuple[str, ...]) -> None:
    """Every ``toolUse`` is answered by a ``toolResult`` in the very next turn, and only so."""
    collector.uses_tools = collector.uses_tools or bool(ids)
    if role == "assistant":
        collector.pending = ids
        return
    for tool_use_id in ids:
        if tool_use_id not in collector.pending:
            raise validation(
                f"{MODEL_ERRORS}messages.{i}.content: unexpected `tool_use_id` found in "
                f"`tool_result` blocks: {tool_use_id}. Each `tool_result` block must have a "
                "corresponding `tool_use` block in the previous message."
            )
    missing = tuple(tool_use_id for tool_use_id in collector.pending if tool_use_id not in ids)
    if missing:
        raise _unanswered(i - 1, missing)
    collector.pending = ()


def _unanswered(i: int, ids: Sequence[str]) -> Exception:
    return validation(
        f"{MODEL_ERRORS}messages.{i}: `tool_use` ids were found without `tool_result` blocks "
        f"immediately after: {', '.join(ids)}. Each `tool_use` block must have a "
        "corresponding `tool_result` block in the next message."
    )


def _image(path: str, block: Mapping[str, Any]) -> SeenImage:
    fmt = block["format"]
    _enum(f"{path}.format", fmt, IMAGE_FORMATS)
    data = block["source"].get("bytes")
    if not isinstance(data, str):
        raise validation(f"{path}.source: the emulator accepts only inline image bytes.")
    if len(data) > MAX_IMAGE_BASE64_CHARS:
        raise validation(
            f"{MODEL_ERRORS}{path}.source.bytes: image exceeds 5 MB maximum: {len(data)} bytes "
            f"> {MAX_IMAGE_BASE64_CHARS} bytes"
        )
    declared = f"image/{fmt}"
    accepted = frozenset(f"image/{name}" for name in IMAGE_FORMATS)
    try:
        # Claude reads the first frame of an animated GIF instead of refusing it.
        image = inspect_base64(
            declared, data, detail="auto", accepted=accepted, allow_animated=True
        )
    except ImageRejected as rejected:
        if rejected.reason is Rejection.MISMATCH:
            raise validation(
                f"{MODEL_ERRORS}{path}.source.bytes: Image does not match the provided format {fmt}"
            ) from None
        raise validation(f"{MODEL_ERRORS}{path}.source.bytes: Could not process image") from None
    if max(image.width, image.height) > MAX_IMAGE_SIDE:
        raise validation(
            f"{MODEL_ERRORS}{path}.source.bytes: At least one of the image dimensions exceed "
            f"max allowed size: {MAX_IMAGE_SIDE} pixels"
        )
    return image


def _image_blocks(params: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every image block of the messages (tool results included), with its path."""
    found: list[tuple[str, dict[str, Any]]] = []
    messages = params.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else []):
            if not isinstance(block, dict):
                continue
            if isinstance(block.get("image"), dict):
                found.append((f"messages.{i}.content.{j}.image", block["image"]))
            result = block.get("toolResult")
            items = result.get("content") if isinstance(result, dict) else None
            for k, item in enumerate(items if isinstance(items, list) else []):
                if isinstance(item, dict) and isinstance(item.get("image"), dict):
                    found.append(
                        (f"messages.{i}.content.{j}.toolResult.content.{k}.image", item["image"])
                    )
    return found
