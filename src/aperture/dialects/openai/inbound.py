"""OpenAI Chat Completions request JSON -> canonical ``ChatRequest``. Pure."""

from __future__ import annotations

import msgspec

from aperture.dialects.decoding import decode_request
from aperture.dialects.openai import wire
from aperture.errors import InvalidRequestError, quote
from aperture.media.payloads import Payloads
from aperture.model import (
    Audio,
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
    Video,
)
from aperture.model.locator import OpenAILocator

__all__ = [
    "FORBIDDEN_FIELDS",
    "MAX_TOP_LOGPROBS",
    "check_logprobs",
    "extra_fields",
    "parse_chat_request",
    "to_chat_request",
]

MAX_TOP_LOGPROBS = 20
"""OpenAI's bound on ``top_logprobs`` (the SDK's ``CompletionCreateParams``: 0 to 20)."""

_DECODER = msgspec.json.Decoder(wire.ChatCompletionRequest)

# Fields some SDKs and proxies honour to redirect traffic or credentials. A gateway that
# forwarded them would let a client point an upstream at its own server or key.
FORBIDDEN_FIELDS = frozenset(
    {
        "api_base",
        "api_key",
        "api_version",
        "base_url",
        "custom_llm_provider",
        "extra_headers",
        "extra_query",
        "headers",
        "organization",
        "project",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_region_name",
        "vertex_credentials",
    }
)


def parse_chat_request(
    body: bytes, payloads: Payloads | None = None
) -> tuple[ChatRequest, OpenAILocator]:
    """Decode a Chat Completions body into the canonical request and its field locator.

    Raises:
        InvalidJsonError, InvalidRequestError: with the path of the offending field.
    """
    request, keys = decode_request(body, _DECODER, payloads)
    extra = extra_fields(body, keys, wire.MODELLED_FIELDS)
    return to_chat_request(request, extra), OpenAILocator(
        "max_completion_tokens" if request.max_completion_tokens is not None else "max_tokens"
    )


def extra_fields(body: bytes, keys: list[str], modelled: frozenset[str]) -> dict[str, msgspec.Raw]:
    """Top-level fields the wire type does not model, kept as raw JSON for pass-through."""
    unknown = [k for k in keys if k not in modelled]
    if not unknown:
        return {}
    for key in unknown:
        if key.lower() in FORBIDDEN_FIELDS:
            raise InvalidRequestError(
                f"The field {quote(key)} is not accepted: Aperture never takes upstream addresses, "
                "credentials or headers from a request.",
                param=key,
            )
    raw: dict[str, msgspec.Raw] = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    return {k: raw[k] for k in unknown}


def check_logprobs(logprobs: bool | None, top: int | None, *, top_field: str) -> None:
    """``top_logprobs`` within 0..20 and only with ``logprobs`` (as OpenAI requires).

    Raises:
        InvalidRequestError: with the path of the offending field.
    """
    if top is None:
        return
    if not 0 <= top <= MAX_TOP_LOGPROBS:
        raise InvalidRequestError(
            f"{top_field} must be between 0 and {MAX_TOP_LOGPROBS}; got {top}.", param=top_field
        )
    if top_field == "top_logprobs" and not logprobs:
        raise InvalidRequestError("top_logprobs needs logprobs set to true.", param="top_logprobs")


def to_chat_request(
    request: wire.ChatCompletionRequest, extra: dict[str, msgspec.Raw]
) -> ChatRequest:
    """Convert the decoded wire request into the canonical one."""
    max_tokens = request.max_completion_tokens
    if max_tokens is None:
        max_tokens = request.max_tokens
    for name, value in (("max_tokens", max_tokens), ("n", request.n)):
        if value is not None and value < 1:
            field = "max_completion_tokens" if request.max_completion_tokens else name
            raise InvalidRequestError(f"{field} must be at least 1.", param=field)
    stop = request.stop
    check_logprobs(request.logprobs, request.top_logprobs, top_field="top_logprobs")
    return ChatRequest(
        model=request.model,
        messages=tuple(_message(m) for m in request.messages),
        max_tokens=max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stop=(stop,) if isinstance(stop, str) else tuple(stop) if stop is not None else None,
        seed=request.seed,
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        n=request.n,
        logprobs=bool(request.logprobs),
        top_logprobs=request.top_logprobs,
        user=request.user,
        tools=tuple(_tool(t) for t in request.tools) if request.tools is not None else None,
        tool_choice=_tool_choice(request.tool_choice),
        parallel_tool_calls=request.parallel_tool_calls,
        response_format=(
            ResponseFormat(request.response_format.type, request.response_format.json_schema)
            if request.response_format is not None
            else None
        ),
        stream=bool(request.stream),
        include_usage=bool(request.stream_options and request.stream_options.include_usage),
        extra=extra,
        reasoning=(
            Reasoning(enabled=request.reasoning_effort != "none", effort=request.reasoning_effort)
            if request.reasoning_effort is not None
            else None
        ),
    )


def _message(message: wire.RequestMessage) -> Message:
    match message:
        case wire.UserMessage(content=content, name=name):
            parts = content if isinstance(content, str) else tuple(_part(p) for p in content)
            return Message("user", parts, name=name)
        case wire.SystemMessage(content=content, name=name):
            return Message("system", _text_content(content), name=name)
        case wire.DeveloperMessage(content=content, name=name):
            return Message("developer", _text_content(content), name=name)
        case wire.ToolMessage(content=content, tool_call_id=tool_call_id):
            return Message("tool", _text_content(content), tool_call_id=tool_call_id)
        case wire.AssistantMessage():
            return _assistant(message)


def _assistant(message: wire.AssistantMessage) -> Message:
    content: str | tuple[Part, ...] | None
    if isinstance(message.content, list):
        content = tuple(
            Text(p.text) if isinstance(p, wire.TextPart) else Text(p.refusal)
            for p in message.content
        )
    else:
        content = message.content
    calls = (
        tuple(ToolCall(c.id, c.function.name, c.function.arguments) for c in message.tool_calls)
        if message.tool_calls
        else None
    )
    return Message(
        "assistant", content, name=message.name, tool_calls=calls, reasoning=_thoughts(message)
    )


def _thoughts(message: wire.AssistantMessage) -> tuple[Thought, ...] | None:
    """Signed ``reasoning_details`` when the client kept them, else ``reasoning_content``."""
    if message.reasoning_details:
        thoughts = tuple(
            Thought(redacted=d.data)
            if d.type == "reasoning.encrypted" and d.data
            else Thought(d.text or "", d.signature)
            for d in message.reasoning_details
            if d.type in ("reasoning.text", "reasoning.encrypted")
        )
        return thoughts or None
    return (Thought(message.reasoning_content),) if message.reasoning_content else None


def _text_content(content: wire.TextContent) -> str | tuple[Part, ...]:
    return content if isinstance(content, str) else tuple(Text(p.text) for p in content)


def _part(part: wire.ContentPart) -> Part:
    match part:
        case wire.TextPart(text=text):
            return Text(text)
        case wire.ImageURLPart(image_url=str() as url):
            return Image(url)
        case wire.ImageURLPart(image_url=wire.ImageURL(url=url, detail=detail)):
            return Image(url, detail)
        case wire.InputAudioPart(input_audio=audio):
            return Audio(audio.data, audio.format)
        case wire.VideoURLPart(video_url=video):
            return Video(video.url)
        case wire.FilePart(file=file):
            return File(file.file_id, file.file_data, file.filename)
    raise AssertionError(f"unhandled content part {type(part).__name__}")


def _tool(tool: wire.ToolDefinition) -> Tool:
    fn = tool.function
    return Tool(fn.name, fn.description, fn.parameters, fn.strict)


def _tool_choice(choice: str | wire.NamedToolChoiceWire | None) -> ToolChoice | None:
    if isinstance(choice, wire.NamedToolChoiceWire):
        return NamedToolChoice(choice.function.name)
    return choice  # type: ignore[return-value]  # the wire Literal is the canonical Literal
