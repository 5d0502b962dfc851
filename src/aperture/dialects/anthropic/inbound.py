"""Anthropic Messages request JSON -> canonical ``ChatRequest``. Pure.

System prompts become a leading system message; ``tool_result`` blocks become tool
messages (placed before the rest of their user turn, as OpenAI-style APIs expect);
``thinking`` and ``redacted_thinking`` blocks of earlier turns become the assistant
message's ``reasoning``, signatures kept, so they go back to the provider that signed them.
``thinking`` becomes the canonical ``Reasoning`` (its budget, or "disabled").
"""

from __future__ import annotations

import msgspec

from aperture.dialects.anthropic import wire
from aperture.dialects.decoding import decode_request
from aperture.dialects.openai.inbound import extra_fields
from aperture.errors import InvalidRequestError
from aperture.media.payloads import Payloads
from aperture.model import (
    CacheMark,
    ChatRequest,
    File,
    Image,
    Message,
    NamedToolChoice,
    Part,
    Reasoning,
    ResponseFormat,
    Text,
    Thought,
    Tool,
    ToolCall,
    ToolChoice,
)

__all__ = ["MappedLocator", "parse_count_request", "parse_messages_request"]

_DECODER = msgspec.json.Decoder(wire.MessagesRequest)
_COUNT_DECODER = msgspec.json.Decoder(wire.CountTokensRequest)
_encode = msgspec.json.Encoder().encode


class MappedLocator:
    """Paths recorded while converting, since canonical and client positions differ."""

    max_tokens = "max_tokens"
    reasoning = "thinking"
    logprobs = "logprobs"  # Messages has no such field; never asked from this dialect
    image_output = "modalities"  # likewise

    def __init__(self) -> None:
        self.paths: dict[tuple[int, int], str] = {}

    def image(self, message: int, part: int) -> str:
        return self.paths.get((message, part), "messages")

    def part(self, message: int, part: int) -> str:
        path = self.paths.get((message, part), "messages")
        return path.rsplit(".source", 1)[0]


def parse_messages_request(
    body: bytes, payloads: Payloads | None = None
) -> tuple[ChatRequest, MappedLocator]:
    """Decode a Messages body into the canonical request and its field locator."""
    # Images come as bare base64 here: the decoder keeps each, and _image moves it to the
    # data URI it makes, so intake does not decode the image a second time.
    request, keys = decode_request(body, _DECODER, payloads, bare=True)
    if request.max_tokens < 1:
        raise InvalidRequestError("max_tokens must be at least 1.", param="max_tokens")
    return _to_chat(request, extra_fields(body, keys, wire.MODELLED_FIELDS), payloads)


def parse_count_request(body: bytes) -> tuple[ChatRequest, MappedLocator]:
    """Decode a ``count_tokens`` body into the canonical request (no ``max_tokens``)."""
    counted, keys = decode_request(body, _COUNT_DECODER)
    request = wire.MessagesRequest(
        model=counted.model,
        max_tokens=1,
        messages=counted.messages,
        system=counted.system,
        tools=counted.tools,
        tool_choice=counted.tool_choice,
        thinking=counted.thinking,
        cache_control=counted.cache_control,
    )
    chat, locator = _to_chat(request, extra_fields(body, keys, wire.COUNT_FIELDS))
    return msgspec.structs.replace(chat, max_tokens=None, include_usage=False), locator


def _to_chat(
    request: wire.MessagesRequest,
    extra: dict[str, msgspec.Raw],
    payloads: Payloads | None = None,
) -> tuple[ChatRequest, MappedLocator]:
    locator = MappedLocator()
    messages: list[Message] = []
    if request.system:
        messages.append(_system(request.system))
    for i, message in enumerate(request.messages):
        messages.extend(_convert(message, i, len(messages), locator, payloads))
    return (
        ChatRequest(
            model=request.model,
            messages=tuple(messages),
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=tuple(request.stop_sequences) if request.stop_sequences else None,
            user=request.metadata.user_id if request.metadata else None,
            tools=tuple(
                Tool(t.name, t.description, t.input_schema, cache=_mark(t.cache_control))
                for t in request.tools
            )
            if request.tools
            else None,
            tool_choice=_tool_choice(request.tool_choice),
            parallel_tool_calls=(
                not request.tool_choice.disable_parallel_tool_use
                if request.tool_choice and request.tool_choice.disable_parallel_tool_use is not None
                else None
            ),
            stream=bool(request.stream),
            reasoning=_reasoning(request.thinking),
            response_format=_format(request.output_config),
            cache=_mark(request.cache_control),
            # Anthropic streams always end with usage; the renderer needs it.
            include_usage=True,
            extra=extra,
        ),
        locator,
    )


def _convert(
    message: wire.MessageParam,
    i: int,
    start: int,
    locator: MappedLocator,
    payloads: Payloads | None,
) -> list[Message]:
    if isinstance(message.content, str):
        return [Message(message.role, message.content)]
    tool_messages: list[Message] = []
    parts: list[Part] = []
    calls: list[ToolCall] = []
    thoughts: list[Thought] = []
    paths: list[str] = []
    for j, block in enumerate(message.content):
        path = f"messages[{i}].content[{j}]"
        match block:
            case wire.TextBlock(text=text, cache_control=cache):
                parts.append(Text(text, _mark(cache)))
                paths.append(path)
            case wire.ImageBlock(source=source, cache_control=cache):
                parts.append(_image(source, cache, payloads))
                paths.append(f"{path}.source.{_field(source)}")
            case wire.DocumentBlock():
                parts.append(_document(block, payloads))
                paths.append(f"{path}.source.data")
            case wire.ToolUseBlock(id=id, name=name, input=arguments, cache_control=cache):
                calls.append(ToolCall(id, name, _encode(arguments).decode(), _mark(cache)))
            case wire.ToolResultBlock():
                text, images = _tool_result(block, path, payloads)
                tool_messages.append(
                    Message(
                        "tool",
                        text,
                        tool_call_id=block.tool_use_id,
                        cache=_mark(block.cache_control),
                    )
                )
                for image, image_path in images:
                    parts.append(image)
                    paths.append(image_path)
            case wire.ThinkingBlock() | wire.RedactedThinkingBlock():
                thoughts.append(_thought(block))
    converted = list(tool_messages)
    if parts or calls or thoughts or not tool_messages:
        index = start + len(converted)
        for p, path in enumerate(paths):
            locator.paths[index, p] = path
        converted.append(
            Message(
                message.role,
                tuple(parts) if parts else None,
                tool_calls=tuple(calls) or None,
                reasoning=tuple(thoughts) if thoughts and message.role == "assistant" else None,
            )
        )
    return converted


def _thought(block: wire.ThinkingBlock | wire.RedactedThinkingBlock) -> Thought:
    if isinstance(block, wire.RedactedThinkingBlock):
        return Thought(redacted=block.data)
    return Thought(block.thinking, block.signature)


def _format(config: wire.OutputConfig | None) -> ResponseFormat | None:
    """Anthropic's structured output as the canonical JSON schema format (OpenAI's shape, with
    the name OpenAI requires and Anthropic does not have)."""
    if config is None or config.format is None:
        return None
    return ResponseFormat("json_schema", {"name": "output", "schema": config.format.schema})


def _reasoning(thinking: wire.ThinkingParam | None) -> Reasoning | None:
    match thinking:
        case wire.ThinkingEnabled(budget_tokens=budget, display=display):
            return Reasoning(budget_tokens=budget, show=_shown(display))
        case wire.ThinkingAdaptive(display=display):
            return Reasoning(show=_shown(display))
        case wire.ThinkingDisabled():
            return Reasoning(enabled=False)
    return None


def _shown(display: str | None) -> bool | None:
    return None if display is None else display == "summarized"


def _system(system: str | list[wire.TextBlock]) -> Message:
    """A system list is kept as parts when any carries a cache breakpoint, so a provider that
    caches can place it; otherwise it is one string, as every provider takes."""
    if isinstance(system, str):
        return Message("system", system)
    if any(block.cache_control is not None for block in system):
        return Message("system", tuple(Text(b.text, _mark(b.cache_control)) for b in system))
    return Message("system", "\n\n".join(b.text for b in system))


def _mark(cache: wire.CacheControl | None) -> CacheMark | None:
    return None if cache is None else CacheMark(cache.type, cache.ttl)


def _image(
    source: wire.Base64Source | wire.UrlSource,
    cache: wire.CacheControl | None,
    payloads: Payloads | None,
) -> Image:
    if isinstance(source, wire.UrlSource):
        return Image(source.url, cache=_mark(cache))
    # Intake checks the bytes and corrects the type; the data URI is its common input.
    url = f"data:{source.media_type};base64,{source.data}"
    if payloads is not None:
        payloads.rekey(source.data, url)
    return Image(url, cache=_mark(cache))


def _document(block: wire.DocumentBlock, payloads: Payloads | None) -> Part:
    source, title, mark = block.source, block.title, _mark(block.cache_control)
    if isinstance(source, wire.PlainTextSource):
        # A plain-text document is text to every model: sent as a text part.
        return Text(f"{title}\n\n{source.data}" if title else source.data, mark)
    if isinstance(source, wire.UrlSource):
        return File(filename=title, url=source.url, cache=mark)
    if payloads is not None:
        payloads.drop(source.data)  # the document intake decodes its own
    # Intake checks the bytes (strict base64, %PDF-, pages) and corrects the type.
    data = f"data:{source.media_type};base64,{source.data}"
    return File(file_data=data, filename=title, cache=mark)


def _field(source: wire.Base64Source | wire.UrlSource) -> str:
    return "url" if isinstance(source, wire.UrlSource) else "data"


def _tool_result(
    block: wire.ToolResultBlock, path: str, payloads: Payloads | None
) -> tuple[str, list[tuple[Image, str]]]:
    if isinstance(block.content, str):
        return block.content, []
    texts = [b.text for b in block.content if isinstance(b, wire.TextBlock)]
    images = [
        (
            _image(b.source, b.cache_control, payloads),
            f"{path}.content[{k}].source.{_field(b.source)}",
        )
        for k, b in enumerate(block.content)
        if isinstance(b, wire.ImageBlock)
    ]
    return "\n".join(texts), images


def _tool_choice(choice: wire.ToolChoiceParam | None) -> ToolChoice | None:
    if choice is None:
        return None
    match choice.type:
        case "auto":
            return "auto"
        case "any":
            return "required"
        case "none":
            return "none"
        case "tool":
            if not choice.name:
                raise InvalidRequestError(
                    "tool_choice of type tool needs a name.", param="tool_choice.name"
                )
            return NamedToolChoice(choice.name)
