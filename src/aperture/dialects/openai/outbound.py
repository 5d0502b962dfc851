"""Canonical responses and stream events -> OpenAI Chat Completions JSON. Pure."""

from __future__ import annotations

from typing import Literal

import msgspec

from aperture.errors import GatewayError
from aperture.model import (
    ChatResponse,
    Delta,
    Finish,
    GeneratedImage,
    StreamEvent,
    Thought,
    TokenLogprob,
    Usage,
    UsageReport,
)

__all__ = ["StreamRenderer", "logprobs_out", "render_error", "render_response"]


class _Out(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class FunctionOut(_Out, kw_only=True):
    name: str | None = None
    arguments: str | None = None


class ToolCallOut(_Out, kw_only=True):
    index: int | None = None
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionOut


class ImageUrlOut(msgspec.Struct, kw_only=True):
    url: str


class ImageOut(msgspec.Struct, kw_only=True):
    """A generated image as OpenAI-compatible routers relay it: ``message.images[]``."""

    type: Literal["image_url"] = "image_url"
    image_url: ImageUrlOut


class MessageOut(msgspec.Struct, kw_only=True):
    role: str = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[ToolCallOut] | None = None
    images: list[ImageOut] | msgspec.UnsetType = msgspec.UNSET
    """Left out unless the model made images: OpenAI's own messages have no such field."""
    reasoning_content: str | msgspec.UnsetType = msgspec.UNSET
    """The model's thinking, as DeepSeek, vLLM and OpenRouter put it; left out when none
    (OpenAI's own models never return their reasoning here)."""
    reasoning_details: list[dict[str, object]] | msgspec.UnsetType = msgspec.UNSET
    """The same thoughts with their signatures, as OpenRouter returns them, for a client to
    send back with the next turn; left out when no thought is signed."""


class TopLogprobOut(msgspec.Struct, kw_only=True):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobOut(msgspec.Struct, kw_only=True):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprobOut]


class LogprobsOut(msgspec.Struct, kw_only=True):
    """``choices[].logprobs``: OpenAI's ``ChoiceLogprobs`` (content only; no refusal tokens)."""

    content: list[TokenLogprobOut] | None
    refusal: None = None


class ChoiceOut(msgspec.Struct, kw_only=True):
    index: int
    message: MessageOut
    finish_reason: str | None
    logprobs: LogprobsOut | None = None


class PromptDetails(_Out, kw_only=True):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    image_tokens: int | None = None


class CompletionDetails(_Out, kw_only=True):
    reasoning_tokens: int | None = None


class UsageOut(_Out, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptDetails | None = None
    completion_tokens_details: CompletionDetails | None = None


class ChatCompletion(_Out, kw_only=True):
    id: str
    object: str
    created: int
    model: str
    choices: list[ChoiceOut]
    usage: UsageOut | None = None
    system_fingerprint: str | None = None


class DeltaOut(_Out, kw_only=True):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallOut] | None = None
    images: list[ImageOut] | None = None
    reasoning_content: str | None = None
    reasoning_details: list[dict[str, object]] | None = None


class ChunkChoice(msgspec.Struct, kw_only=True):
    index: int
    delta: DeltaOut
    finish_reason: str | None = None
    logprobs: LogprobsOut | None = None


class ChatCompletionChunk(_Out, kw_only=True):
    id: str
    object: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: UsageOut | None = None


class ErrorBody(msgspec.Struct, kw_only=True):
    type: str
    code: str
    message: str
    param: str | None


class ErrorEnvelope(msgspec.Struct):
    error: ErrorBody


_encode = msgspec.json.Encoder().encode


def render_response(response: ChatResponse, model: str) -> bytes:
    """The ``chat.completion`` object, naming the model the client asked for."""
    choices = [
        ChoiceOut(
            index=c.index,
            message=MessageOut(
                content=c.content,
                refusal=c.refusal,
                tool_calls=[
                    ToolCallOut(
                        id=t.id,
                        type="function",
                        function=FunctionOut(name=t.name, arguments=t.arguments),
                    )
                    for t in c.tool_calls
                ]
                if c.tool_calls
                else None,
                images=_images(c.images) or msgspec.UNSET,
                reasoning_content=_reasoning_text(c.reasoning) or msgspec.UNSET,
                reasoning_details=_reasoning_details(c.reasoning) or msgspec.UNSET,
            ),
            finish_reason=c.finish_reason,
            logprobs=logprobs_out(c.logprobs),
        )
        for c in response.choices
    ]
    return _encode(
        ChatCompletion(
            id=response.id,
            object="chat.completion",
            created=response.created,
            model=model,
            choices=choices,
            usage=_usage(response.usage) if response.usage is not None else None,
            system_fingerprint=response.system_fingerprint,
        )
    )


def _usage(usage: Usage) -> UsageOut:
    cache = (usage.cached_tokens, usage.cache_creation_tokens)
    prompt = (
        PromptDetails(
            cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_creation_tokens,
            image_tokens=usage.image_tokens,
        )
        if cache != (None, None) or usage.image_tokens is not None
        else None
    )
    completion = (
        CompletionDetails(reasoning_tokens=usage.reasoning_tokens)
        if usage.reasoning_tokens is not None
        else None
    )
    return UsageOut(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        prompt_tokens_details=prompt,
        completion_tokens_details=completion,
    )


def render_error(error: GatewayError) -> bytes:
    """The OpenAI error envelope: ``{"error": {"type", "code", "message", "param"}}``."""
    return _encode(
        ErrorEnvelope(
            ErrorBody(type=error.type, code=error.code, message=error.message, param=error.param)
        )
    )


class StreamRenderer:
    """Renders canonical stream events as SSE ``chat.completion.chunk`` lines.

    ``include_usage`` decides whether the final usage chunk is sent, as the client asked.
    Thinking streams as ``reasoning_content``; when a thought is signed (or redacted), one
    ``reasoning_details`` item carries it whole, signature included, for the client to send
    back as the non-streamed answer's would be.
    """

    def __init__(self, *, id: str, created: int, model: str, include_usage: bool) -> None:
        self._id, self._created, self._model = id, created, model
        self._include_usage = include_usage
        self._thought: list[str] = []  # the current thought's text so far
        self._thoughts = 0

    def event(self, event: StreamEvent) -> bytes:
        choice: ChunkChoice
        match event:
            case Delta(thought=Thought(text="") as thought):
                detail = self._signed(thought)
                if detail is None:
                    return b""
                choice = ChunkChoice(index=event.index, delta=DeltaOut(reasoning_details=detail))
            case Delta(thought=Thought(text=text)) if text:
                self._thought.append(text)
                choice = ChunkChoice(index=event.index, delta=_delta(event))
            case Delta():
                choice = ChunkChoice(
                    index=event.index, delta=_delta(event), logprobs=logprobs_out(event.logprobs)
                )
            case Finish(index=index, reason=reason):
                choice = ChunkChoice(index=index, delta=DeltaOut(), finish_reason=reason)
            case UsageReport(usage=usage):
                if not self._include_usage:
                    return b""
                return self._chunk([], _usage(usage))
        return self._chunk([choice], None)

    def _signed(self, thought: Thought) -> list[dict[str, object]] | None:
        """The whole thought a signature (or a redacted payload) ends, as one detail."""
        text, self._thought = "".join(self._thought), []
        if thought.redacted is None and not thought.signature:
            return None
        whole = Thought(text, thought.signature, thought.redacted)
        details = _reasoning_details((whole,))
        for detail in details:
            detail["index"] = self._thoughts
        self._thoughts += 1
        return details

    def _chunk(self, choices: list[ChunkChoice], usage: UsageOut | None) -> bytes:
        chunk = ChatCompletionChunk(
            id=self._id,
            object="chat.completion.chunk",
            created=self._created,
            model=self._model,
            choices=choices,
            usage=usage,
        )
        return b"data: " + _encode(chunk) + b"\n\n"

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"

    @staticmethod
    def error(error: GatewayError) -> bytes:
        """The in-band error event after the stream has started; no [DONE] follows it."""
        return b"data: " + render_error(error) + b"\n\n"


def _delta(event: Delta) -> DeltaOut:
    calls = (
        [
            ToolCallOut(
                index=t.index,
                id=t.id,
                type="function" if t.id is not None else None,
                function=FunctionOut(name=t.name, arguments=t.arguments),
            )
            for t in event.tool_calls
        ]
        if event.tool_calls
        else None
    )
    return DeltaOut(
        role=event.role,
        content=event.content,
        refusal=event.refusal,
        tool_calls=calls,
        images=_images(event.images),
        reasoning_content=event.thought.text or None if event.thought is not None else None,
    )


def _reasoning_details(thoughts: tuple[Thought, ...] | None) -> list[dict[str, object]]:
    if not thoughts or not any(t.signature or t.redacted for t in thoughts):
        return []
    details: list[dict[str, object]] = []
    for index, thought in enumerate(thoughts):
        if thought.redacted is not None:
            details.append({"type": "reasoning.encrypted", "data": thought.redacted})
        else:
            detail: dict[str, object] = {"type": "reasoning.text", "text": thought.text}
            if thought.signature:
                detail["signature"] = thought.signature
            details.append(detail)
        details[-1]["index"] = index
    return details


def _reasoning_text(thoughts: tuple[Thought, ...] | None) -> str | None:
    """The thoughts' text in one string; redacted ones have none to show."""
    if not thoughts:
        return None
    return "\n\n".join(t.text for t in thoughts if t.text) or None


def _images(images: tuple[GeneratedImage, ...] | None) -> list[ImageOut] | None:
    if not images:
        return None
    return [ImageOut(image_url=ImageUrlOut(url=image.data_uri)) for image in images]


def logprobs_out(tokens: tuple[TokenLogprob, ...] | None) -> LogprobsOut | None:
    """The ``logprobs`` object of a choice or chunk; None when there are none."""
    if tokens is None:
        return None
    return LogprobsOut(content=token_logprobs_out(tokens))


def token_logprobs_out(tokens: tuple[TokenLogprob, ...]) -> list[TokenLogprobOut]:
    """Tokens in OpenAI's shape (Chat Completions' ``content[]``; Responses reuses it)."""
    return [
        TokenLogprobOut(
            token=t.token,
            logprob=t.logprob,
            bytes=list(t.bytes) if t.bytes is not None else None,
            top_logprobs=[
                TopLogprobOut(
                    token=a.token,
                    logprob=a.logprob,
                    bytes=list(a.bytes) if a.bytes is not None else None,
                )
                for a in t.top
            ],
        )
        for t in tokens
    ]
