"""Reading a Messages request the way Anthropic does: the body, turns, blocks and images.

Unlike OpenAI, Anthropic refuses unknown fields (``Extra inputs are not permitted``), so a
gateway that leaks OpenAI-only fields upstream fails here as it would in production.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from aperture.emulator.anthropic_cache import cache_split, read_cache_control
from aperture.emulator.anthropic_errors import (
    extra_input,
    field_required,
    invalid,
    unknown_tag,
    wrong_type,
)
from aperture.emulator.anthropic_images import (
    IMAGE_MEDIA_TYPES,
    MAX_IMAGE_BASE64_CHARS,
    base64_image,
    image_tokens,
    url_image,
)
from aperture.emulator.anthropic_thinking import (
    REDACTED_TRIGGER,
    ThinkingConfig,
    check_sampling,
    check_signed,
    read_thinking,
    tool_turn_error,
)
from aperture.emulator.anthropic_tools import read_tools, tool_breakpoints
from aperture.emulator.describe import Seen, SeenImage, one_line

__all__ = [
    "IMAGE_MEDIA_TYPES",
    "JSON_INSTRUCTION",
    "MAX_IMAGE_BASE64_CHARS",
    "MessagesRequest",
    "image_tokens",
    "parse_messages_request",
]

MANY_IMAGES = 20
MANY_IMAGES_MAX_SIDE = 2000
MAX_IMAGES = 100
JSON_INSTRUCTION = "respond with a single json object"
"""A system prompt holding this (any case) gets the JSON answer: the emulated model obeys.

Anthropic has no ``response_format``; gateways emulate JSON mode with such an instruction.
``output_config.format`` (native structured outputs) gets the JSON answer too.
"""

FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "service_tier",
        "container",
        "output_config",
        "cache_control",
        "inference_geo",
        "speed",
        "diagnostics",
        "mcp_servers",
        "context_management",
    }
)
COUNT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "thinking",
        "tools",
        "tool_choice",
        "cache_control",
        "output_config",
        "speed",
        "mcp_servers",
        "context_management",
    }
)
"""What ``/v1/messages/count_tokens`` takes (MessageCountTokensParams): no ``max_tokens``,
sampling, ``stop_sequences``, ``metadata`` or ``stream``."""
MESSAGE_FIELDS = frozenset({"role", "content"})
ROLE_BLOCKS: Mapping[str, tuple[str, ...]] = {
    "user": ("text", "image", "document", "tool_result"),
    "assistant": ("text", "tool_use", "thinking", "redacted_thinking"),
}
TOOL_RESULT_BLOCKS = ("text", "image", "document")


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    model: str
    seen: Seen
    input_tokens: int
    stream: bool
    max_tokens: int
    stop_sequences: tuple[str, ...]
    tool_name: str | None
    """Set when ``tool_choice`` forces a call (``any`` or ``tool``): the tool the answer calls."""
    json_mode: bool
    thinking: ThinkingConfig | None = None
    redacted: bool = False
    """The prompt holds Anthropic's test string: the thinking comes back redacted."""
    cache_write: int = 0
    cache_read: int = 0

    @property
    def prompt_tokens(self) -> int:
        """Every input token, cached or not: what ``count_tokens`` answers."""
        return self.input_tokens + self.cache_write + self.cache_read


@dataclass(slots=True)
class _Collector:
    images: list[SeenImage] = field(default_factory=list)
    image_paths: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    system: list[str] = field(default_factory=list)
    asked: str = ""
    pending_tool_uses: tuple[str, ...] = ()
    """``tool_use`` ids of the previous assistant turn, which the next turn must answer."""
    breakpoints: list[int] = field(default_factory=list)
    """The prompt-token position of each ``cache_control`` block."""
    last_assistant: tuple[int, bool, bool] | None = None
    """The last assistant turn: its index, whether it opens with thinking, whether it calls
    tools."""

    def tokens(self) -> int:
        chars = sum(len(text) for text in self.texts)
        return math.ceil(chars / 4) + sum(image_tokens(i) for i in self.images)

    def mark(self, block: Mapping[str, object], path: str) -> None:
        if read_cache_control(block, path):
            self.breakpoints.append(self.tokens())


def parse_messages_request(body: bytes, *, counting: bool = False) -> MessagesRequest:
    """Validate a request body (of ``count_tokens`` when ``counting``).

    Raises:
        AnthropicError: what Anthropic would answer for the same body.
    """
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise invalid("There was an error parsing the body of your request as JSON.") from None
    if not isinstance(data, dict):
        raise wrong_type("body", "a valid dictionary")
    for key in data:
        if key not in (COUNT_FIELDS if counting else FIELDS):
            raise extra_input(key)
    model = _required(data, "model")
    if not isinstance(model, str):
        raise wrong_type("model", "a valid string")
    max_tokens = 0 if counting else _integer(data, "max_tokens", low=0)
    messages = _required(data, "messages")
    if not isinstance(messages, list):
        raise wrong_type("messages", "a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    collector = _Collector()
    # Tools come first in the cached prefix; they add no tokens of their own here.
    collector.breakpoints.extend(0 for _ in range(tool_breakpoints(data.get("tools"))))
    _read_system(collector, data.get("system"))
    for i, message in enumerate(messages):
        _read_message(collector, messages, i, message)
    _check_image_limits(collector)
    _read_sampling(data)
    seen = Seen(
        images=tuple(collector.images),
        asked=collector.asked,
        system=" ".join(collector.system) if collector.system else None,
        text_chars=sum(len(text) for text in collector.texts),
    )
    tool_name = read_tools(data)
    thinking = read_thinking(data, model, None if counting else max_tokens)
    if thinking is not None:
        check_sampling(data, forced_tool=tool_name is not None)
        last = collector.last_assistant
        if last is not None and last[2] and not last[1]:
            raise tool_turn_error(last[0])
    if read_cache_control(data, "body"):
        # Automatic caching: a breakpoint after the last cacheable block.
        collector.breakpoints.append(collector.tokens())
    written, read = cache_split(collector.breakpoints)
    return MessagesRequest(
        model=model,
        seen=seen,
        input_tokens=collector.tokens() - written - read,
        stream=_boolean(data, "stream"),
        max_tokens=max_tokens,
        stop_sequences=_stop_sequences(data),
        tool_name=tool_name,
        json_mode=_json_mode(data, seen.system),
        thinking=thinking,
        redacted=any(REDACTED_TRIGGER in text for text in collector.texts),
        cache_write=written,
        cache_read=read,
    )


def _required(mapping: Mapping[str, object], key: str, parent: str | None = None) -> object:
    if key not in mapping:
        raise field_required(f"{parent}.{key}" if parent else key)
    return mapping[key]


def _integer(data: Mapping[str, object], key: str, *, low: int) -> int:
    value = _required(data, key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise wrong_type(key, "a valid integer")
    if value < low:
        raise wrong_type(key, f"greater than or equal to {low}")
    return value


def _boolean(data: Mapping[str, object], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise wrong_type(key, "a valid boolean")
    return value


def _number(data: Mapping[str, object], key: str, *, high: float | None) -> None:
    value = data.get(key)
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise wrong_type(key, "a valid number")
    if value < 0:
        raise wrong_type(key, "greater than or equal to 0")
    if high is not None and value > high:
        raise wrong_type(key, f"less than or equal to {high:g}")


def _read_sampling(data: Mapping[str, object]) -> None:
    _number(data, "temperature", high=1)
    _number(data, "top_p", high=1)
    top_k = data.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool)):
        raise wrong_type("top_k", "a valid integer")
    metadata = data.get("metadata")
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise wrong_type("metadata", "a valid dictionary")
    for key, value in metadata.items():
        if key != "user_id":
            raise extra_input(f"metadata.{key}")
        if value is not None and not isinstance(value, str):
            raise wrong_type("metadata.user_id", "a valid string")


def _stop_sequences(data: Mapping[str, object]) -> tuple[str, ...]:
    value = data.get("stop_sequences")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise wrong_type("stop_sequences", "a valid list")
    for k, item in enumerate(value):
        if not isinstance(item, str):
            raise wrong_type(f"stop_sequences.{k}", "a valid string")
    return tuple(value)


def _read_system(collector: _Collector, system: object) -> None:
    if system is None:
        return
    if isinstance(system, str):
        collector.texts.append(system)
        collector.system.append(system)
        return
    if not isinstance(system, list):
        raise wrong_type("system", "a valid string")
    for k, block in enumerate(system):
        path = f"system.{k}"
        if not isinstance(block, dict):
            raise wrong_type(path, "a valid dictionary")
        if block.get("type") != "text":
            raise unknown_tag(path, block.get("type"), ("text",))
        text = _text(block, f"{path}.text")
        collector.texts.append(text)
        if text:
            collector.system.append(text)
        collector.mark(block, f"{path}.text")


def _read_message(
    collector: _Collector, messages: Sequence[object], i: int, message: object
) -> None:
    path = f"messages.{i}"
    if not isinstance(message, dict):
        raise wrong_type(path, "a valid dictionary")
    for key in message:
        if key not in MESSAGE_FIELDS:
            raise extra_input(f"{path}.{key}")
    role = _required(message, "role", path)
    if role not in ROLE_BLOCKS:
        raise wrong_type(f"{path}.role", "'user' or 'assistant'")
    previous = messages[i - 1] if i else None
    if i == 0 and role != "user":
        raise invalid('messages: first message must use the "user" role')
    if isinstance(previous, dict) and previous.get("role") == role:
        raise invalid(
            'messages: roles must alternate between "user" and "assistant", but found '
            f'multiple "{role}" roles in a row'
        )
    content = _required(message, "content", path)
    final_assistant = role == "assistant" and i == len(messages) - 1
    if isinstance(content, str):
        blocks: list[object] = [{"type": "text", "text": content}] if content else []
    elif isinstance(content, list):
        blocks = content
    else:
        raise wrong_type(f"{path}.content", "a valid string")
    if not blocks and not final_assistant:
        raise invalid(
            f"{path}: all messages must have non-empty content except for the optional final "
            "assistant message"
        )
    answered = _read_blocks(collector, path, str(role), blocks)
    if role == "assistant":
        first = blocks[0].get("type") if blocks and isinstance(blocks[0], dict) else None
        thinks = first in ("thinking", "redacted_thinking")
        collector.last_assistant = (i, thinks, bool(answered))
    _pair_tools(collector, i, str(role), answered)


def _read_blocks(
    collector: _Collector, path: str, role: str, blocks: Sequence[object]
) -> tuple[str, ...]:
    """Read a turn's blocks; the ids its ``tool_use`` (assistant) or ``tool_result`` (user)
    blocks name."""
    texts: list[str] = []
    ids: list[str] = []
    asks = False
    for j, block in enumerate(blocks):
        at = f"{path}.content.{j}"
        kind, block = _block(block, at, ROLE_BLOCKS[role])
        tagged = f"{at}.{kind}"
        if kind in ("thinking", "redacted_thinking"):
            check_signed(at, kind, block)
            continue  # earlier turns' thinking is not part of the prompt Anthropic counts
        if kind == "tool_result":
            ids.append(_tool_result(collector, tagged, block))
        else:
            asks = True
        if kind == "tool_use":
            ids.append(_tool_use(tagged, block))
        elif kind == "text":
            texts.append(_text(block, f"{tagged}.text", nonempty=True))
            collector.texts.append(texts[-1])
        elif kind == "image":
            _image(collector, tagged, block)
        elif kind == "document":
            _required(block, "source", tagged)
        collector.mark(block, tagged)
    if role == "user" and asks:
        collector.asked = " ".join(texts)
    return tuple(ids)


def _block(block: object, path: str, allowed: Sequence[str]) -> tuple[str, dict[str, object]]:
    """The block's type, checked against ``allowed``, and the block as a mapping."""
    if not isinstance(block, dict):
        raise wrong_type(path, "a valid dictionary")
    kind = _required(block, "type", path)
    if not isinstance(kind, str) or kind not in allowed:
        raise unknown_tag(path, kind, sorted(allowed))
    return kind, block


def _text(block: Mapping[str, object], path: str, *, nonempty: bool = False) -> str:
    text = _required(block, "text", path.rpartition(".")[0])
    if not isinstance(text, str):
        raise wrong_type(path, "a valid string")
    if nonempty and not text:
        raise invalid("messages: text content blocks must be non-empty")
    if nonempty and not text.strip():
        raise invalid("messages: text content blocks must contain non-whitespace text")
    return text


def _tool_use(path: str, block: Mapping[str, object]) -> str:
    for key in ("id", "name"):
        if not isinstance(_required(block, key, path), str):
            raise wrong_type(f"{path}.{key}", "a valid string")
    if not isinstance(_required(block, "input", path), dict):
        raise wrong_type(f"{path}.input", "a valid dictionary")
    return str(block["id"])


def _tool_result(collector: _Collector, path: str, block: Mapping[str, object]) -> str:
    tool_use_id = _required(block, "tool_use_id", path)
    if not isinstance(tool_use_id, str):
        raise wrong_type(f"{path}.tool_use_id", "a valid string")
    content = block.get("content")
    if content is None:
        return tool_use_id
    if isinstance(content, str):
        collector.texts.append(content)
        return tool_use_id
    if not isinstance(content, list):
        raise wrong_type(f"{path}.content", "a valid string")
    for k, item in enumerate(content):
        at = f"{path}.content.{k}"
        kind, item = _block(item, at, TOOL_RESULT_BLOCKS)
        if kind == "text":
            collector.texts.append(_text(item, f"{at}.text.text", nonempty=True))
        elif kind == "image":
            _image(collector, f"{at}.image", item)
    return tool_use_id


def _pair_tools(collector: _Collector, i: int, role: str, ids: tuple[str, ...]) -> None:
    """Every ``tool_use`` is answered by a ``tool_result`` in the very next turn, and only so."""
    pending = collector.pending_tool_uses
    if role == "user":
        for tool_use_id in ids:
            if tool_use_id not in pending:
                raise invalid(
                    f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{tool_use_id}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
        missing = [tool_use_id for tool_use_id in pending if tool_use_id not in ids]
        if missing:
            raise invalid(
                f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        collector.pending_tool_uses = ()
    else:
        collector.pending_tool_uses = ids


def _image(collector: _Collector, path: str, block: Mapping[str, object]) -> None:
    source = _required(block, "source", path)
    if not isinstance(source, dict):
        raise wrong_type(f"{path}.source", "a valid dictionary")
    kind = _required(source, "type", f"{path}.source")
    if kind == "url":
        collector.images.append(url_image(f"{path}.source.url", source))
    elif kind == "base64":
        collector.images.append(base64_image(f"{path}.source.base64", source))
    else:
        raise unknown_tag(f"{path}.source", kind, ("base64", "url"))
    collector.image_paths.append(f"{path}.source")


def _check_image_limits(collector: _Collector) -> None:
    count = len(collector.images)
    if count > MAX_IMAGES:
        raise invalid(f"messages: Too many images in the request: {count} > {MAX_IMAGES}")
    if count <= MANY_IMAGES:
        return
    for image, path in zip(collector.images, collector.image_paths, strict=True):
        if max(image.width, image.height) > MANY_IMAGES_MAX_SIDE:
            raise invalid(
                f"{path}: At least one of the image dimensions exceed max allowed size for "
                f"many-image requests: {MANY_IMAGES_MAX_SIDE} pixels"
            )


def _json_mode(data: Mapping[str, object], system: str | None) -> bool:
    config = data.get("output_config")
    if isinstance(config, dict):
        spec = config.get("format")
        if isinstance(spec, dict) and spec.get("type") == "json_schema":
            return True
    return system is not None and JSON_INSTRUCTION in one_line(system).lower()
