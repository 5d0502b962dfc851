"""Cohere's v2 Chat API (``POST /v2/chat``), streamed as SSE with typed events.

Pure: builds ``/v2/chat`` requests (``_cohere_request``) and parses responses, typed event
streams and error bodies back into the canonical model.

Translation choices, in one place:

- ``developer`` messages become ``system``. User image parts keep Cohere's (OpenAI-like)
  ``{"type": "image_url", "image_url": {"url", "detail"}}`` shape: inline images as their
  canonical data URI, http(s) URLs as they are (Cohere fetches them).
- An assistant turn with ``tool_calls`` sends its text as ``tool_plan``; in answers and
  streams the ``tool_plan`` comes back as ``content`` (and ``tool-plan-delta`` as content
  deltas), so the round trip is lossless and clients see the model's stated plan.
- ``tool_choice``: ``required`` → ``REQUIRED``, ``none`` → ``NONE``; a named choice offers
  only that tool with ``REQUIRED`` (Cohere has no named choice). Any ``strict`` tool sets
  ``strict_tools``.
- ``response_format`` ``json_object``/``json_schema`` → ``{"type": "json_object"}`` with
  ``json_schema`` set to the bare schema.
- ``top_p`` → ``p``, clamped into Cohere's 0.01–0.99; ``stop`` → ``stop_sequences``.
  ``n > 1`` is refused; ``user`` and ``parallel_tool_calls`` are dropped.
- Usage reports ``billed_units`` (what is charged) when present, else ``tokens``.
- ``finish_reason`` ``ERROR`` and ``TIMEOUT`` (and a ``message-end`` carrying ``error``) are
  raised as errors: the answer is incomplete.
- ``extra`` (OpenAI-dialect top-level fields) is NOT forwarded: Cohere refuses unknown
  fields.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from aperture.errors import (
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from aperture.model import (
    ChatRequest,
    ChatResponse,
    Choice,
    FinishReason,
    StreamEvent,
    Target,
    TokenLogprob,
    ToolCall,
    Usage,
    token_bytes,
)
from aperture.providers._cohere_request import build_body
from aperture.providers._cohere_spec import DEFAULT_BASE_URL
from aperture.providers._json_body import encode_body
from aperture.providers._status import body_text, classify_status, malformed
from aperture.providers._stream import StreamAssembler
from aperture.upstream import Framing, SseEvent, UpstreamRequest

__all__ = ["DEFAULT_BASE_URL", "CohereProvider"]

_FINISH_REASONS: Mapping[str, FinishReason] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}


class _In(msgspec.Struct, kw_only=True):
    pass


class _Content(_In, kw_only=True):
    type: str | None = None
    text: str | None = None


class _Function(_In, kw_only=True):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(_In, kw_only=True):
    id: str | None = None
    function: _Function | None = None


class _Message(_In, kw_only=True):
    # A list in answers and message-start; a single object in content and tool-call events.
    content: _Content | list[_Content] | None = None
    tool_plan: str | None = None
    tool_calls: _ToolCall | list[_ToolCall] | None = None

    def event_text(self) -> str | None:
        """The answer text of a content event; thinking content has no canonical home."""
        content = self.content
        if isinstance(content, _Content) and content.type in (None, "text"):
            return content.text
        return None


class _Tokens(_In, kw_only=True):
    input_tokens: float | None = None
    output_tokens: float | None = None


class _Usage(_In, kw_only=True):
    billed_units: _Tokens | None = None
    tokens: _Tokens | None = None
    cached_tokens: float | None = None


class _LogprobItem(_In, kw_only=True):
    """Cohere's ``LogprobItem``: a text chunk, its tokens' ids and each token's logprob."""

    text: str | None = None
    token_ids: list[int] = []
    logprobs: list[float] | None = None


def _logprobs(items: list[_LogprobItem] | None) -> tuple[TokenLogprob, ...] | None:
    """One canonical token per chunk: Cohere names the chunk's text, not each token's, so
    its logprob is the sum of its tokens' (the chunk's own probability)."""
    if items is None:
        return None
    return tuple(
        TokenLogprob(item.text or "", sum(item.logprobs or ()), token_bytes(item.text or ""))
        for item in items
    )


class _Delta(_In, kw_only=True):
    message: _Message | None = None
    finish_reason: str | None = None
    usage: _Usage | None = None
    error: str | None = None


class _Response(_In, kw_only=True):
    id: str = ""
    message: _Message | None = None
    finish_reason: str | None = None
    usage: _Usage | None = None
    logprobs: list[_LogprobItem] | None = None


class _Event(_In, kw_only=True):
    type: str | None = None
    index: int = 0
    delta: _Delta | None = None
    logprobs: _LogprobItem | None = None
    """On ``content-delta``: the logprobs of the delta's text, when asked."""
    message: Any = None
    """Set when the event is an error body (``{"id", "message"}``) instead of a typed event."""


class _ErrorBody(_In, kw_only=True):
    message: Any = None
    type: str | None = None
    code: str | None = None


_RESPONSE = msgspec.json.Decoder(_Response)
_EVENT = msgspec.json.Decoder(_Event)
_ERROR = msgspec.json.Decoder(_ErrorBody)


class CohereProvider:
    """The ``cohere`` provider kind."""

    stream_framing: ClassVar[Framing] = "sse"
    stream_ends_with_body: ClassVar[bool] = False

    def build_request(self, request: ChatRequest, target: Target) -> UpstreamRequest:
        provider = target.provider
        body = build_body(request, target.upstream_model)
        # request.extra is deliberately not forwarded (OpenAI-dialect extras; see module doc).
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if request.stream else "application/json",
            **provider.headers,
        }
        if provider.api_key:
            headers["Authorization"] = f"Bearer {provider.api_key}"
        base = (provider.base_url or DEFAULT_BASE_URL).rstrip("/")
        return UpstreamRequest(f"{base}/v2/chat", headers, encode_body(body))

    def parse_response(self, body: bytes, target: Target) -> ChatResponse:
        try:
            response = _RESPONSE.decode(body)
        except msgspec.DecodeError as exc:
            raise malformed(target.provider.name) from exc
        message = response.message or _Message()
        calls = tuple(
            ToolCall(c.id or "", (c.function or _Function()).name or "", _arguments(c.function))
            for c in _as_list(message.tool_calls)
        )
        texts = [c.text for c in _as_list(message.content) if c.type in (None, "text") and c.text]
        text = "".join(texts) or (message.tool_plan if calls else None) or ""
        reason = _finish_reason(response.finish_reason, False, target)
        choice = Choice(
            index=0,
            content=text if text or not calls else None,
            tool_calls=calls or None,
            finish_reason="tool_calls" if calls and reason == "stop" else reason,
            logprobs=_logprobs(response.logprobs),
        )
        return ChatResponse(
            id=response.id,
            model=target.upstream_model,
            # Cohere sends no model name or creation time; the answer was created just now.
            created=int(time.time()),
            choices=(choice,),
            usage=_usage(response.usage) if response.usage is not None else None,
        )

    def stream_parser(self, target: Target) -> _StreamParser:
        return _StreamParser(target)

    def parse_error(
        self, status: int, body: bytes, headers: Mapping[str, str], target: Target
    ) -> UpstreamError:
        try:
            error = _ERROR.decode(body)
        except msgspec.DecodeError:
            error = _ErrorBody(message=body_text(body))
        return _classify(status, error, headers, target)


class _StreamParser:
    """Cohere's typed events to canonical ones; ``message-end`` (or ``[DONE]``) ends it."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self.done = False
        self._asm = StreamAssembler()

    def feed(self, event: SseEvent) -> list[StreamEvent]:
        if event.data == "[DONE]":
            self.done = True
            return []
        if not event.data.strip() or self.done:
            return []
        try:
            data = _EVENT.decode(event.data)
        except msgspec.DecodeError as exc:
            raise malformed(self._target.provider.name) from exc
        asm = self._asm
        delta = data.delta or _Delta()
        message = delta.message or _Message()
        kind = data.type or event.event
        match kind:
            case "message-start":
                asm.role()
            case "content-start" | "content-delta":
                asm.text(
                    message.event_text(), 0, _logprobs([data.logprobs] if data.logprobs else None)
                )
            case "tool-plan-delta":
                asm.text(message.tool_plan)
            case "tool-call-start" | "tool-call-delta":
                self._tool_call(kind, data.index, message)
            case "message-end":
                self._end(delta)
            case _ if data.type is None and data.message is not None:
                # Not a typed event but an error body, sent after the 200.
                raise _classify(None, _ErrorBody(message=data.message), {}, self._target)
            # content-end, tool-call-end, citation-*, debug: nothing canonical to say.
        return asm.drain()

    def _tool_call(self, kind: str, index: int, message: _Message) -> None:
        calls = _as_list(message.tool_calls)
        call: _ToolCall = calls[0] if calls else _ToolCall()
        function = call.function or _Function()
        if kind == "tool-call-start":
            self._asm.tool_start(index, call.id, function.name or "", function.arguments or "")
        else:
            self._asm.tool_args(index, function.arguments)

    def _end(self, delta: _Delta) -> None:
        if delta.error:
            raise _classify(None, _ErrorBody(message=delta.error), {}, self._target)
        reason = _finish_reason(delta.finish_reason, True, self._target)
        asm = self._asm
        if asm.tool_count() and reason == "stop":
            reason = "tool_calls"
        self.done = True
        asm.role()
        asm.finish(reason)
        if delta.usage is not None:
            asm.usage(_usage(delta.usage))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _arguments(function: _Function | None) -> str:
    return (function.arguments if function is not None else None) or "{}"


def _finish_reason(reason: str | None, stream: bool, target: Target) -> FinishReason:
    """The canonical reason; ``ERROR`` and ``TIMEOUT`` mean the answer failed and raise."""
    name = target.provider.name
    suffix = " mid-stream" if stream else ""
    if reason == "ERROR":
        raise UpstreamUnavailableError(f"{name} failed{suffix}: generation error", provider=name)
    if reason == "TIMEOUT":
        raise UpstreamTimeoutError(f"{name} timed out{suffix} generating the answer", provider=name)
    return _FINISH_REASONS.get(reason or "", "stop")


def _usage(usage: _Usage) -> Usage:
    counts = usage.billed_units or usage.tokens or _Tokens()
    cached = usage.cached_tokens
    return Usage(
        prompt_tokens=int(counts.input_tokens or 0),
        completion_tokens=int(counts.output_tokens or 0),
        cached_tokens=int(cached) if cached is not None else None,
    )


def _classify(
    status: int | None, error: _ErrorBody, headers: Mapping[str, str], target: Target
) -> UpstreamError:
    """Classify by status and structured fields, never by message text.

    Cohere's error body is ``{"id", "message"}``: a spent account is a 402 (a quota error,
    never retried), while a trial key's monthly cap and the per-minute limit are both a 429
    with no code, told apart only by the message, so every 429 is a rate limit. 498 is
    Cohere's invalid token; 499 means Cohere cancelled the request on its side, and another
    attempt may succeed.
    """
    message = error.message
    said = message if isinstance(message, str) else msgspec.json.encode(message).decode()
    return classify_status(
        status,
        said.strip(),
        headers,
        target.provider.name,
        credentials=frozenset({401, 403, 498}),
        transient=frozenset({499}),
    )
