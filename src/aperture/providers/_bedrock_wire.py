"""What Bedrock Converse sends back (responses, ConverseStream frames, errors), made canonical.

Errors are classified by the exception name (the ``x-amzn-errortype`` header, a stream
frame's ``:exception-type`` or ``:error-code``), and by HTTP status only when the name is
unknown, never by message text (``service-2.json`` documents each exception's status).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from aperture.errors import UpstreamError
from aperture.model import (
    ChatResponse,
    Choice,
    FinishReason,
    StreamEvent,
    Target,
    Thought,
    ToolCall,
    Usage,
)
from aperture.providers._status import ErrorClass, body_text, classify_status, malformed
from aperture.providers._stream import StreamAssembler
from aperture.upstream.eventstream import Frame

__all__ = ["BedrockStreamParser", "classify", "error_name", "parse_converse_response"]

STOP_REASONS: Mapping[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

# The exceptions ``service-2.json`` documents (and AWS's common auth ones), by the class each
# names whatever status carries it: a ``ModelNotReadyException`` is a 429 that means "not yet".
_CLASSES: Mapping[str, ErrorClass] = {
    "throttlingexception": "rate_limited",
    "toomanyrequestsexception": "rate_limited",
    "servicequotaexceededexception": "quota",
    **dict.fromkeys(
        (
            "accessdeniedexception",
            "unrecognizedclientexception",
            "invalidsignatureexception",
            "incompletesignatureexception",
            "missingauthenticationtokenexception",
            "expiredtokenexception",
            "signaturedoesnotmatch",
        ),
        "credentials",
    ),
    "modeltimeoutexception": "timeout",
    **dict.fromkeys(
        (
            "serviceunavailableexception",
            "internalserverexception",
            "modelnotreadyexception",
            "modelstreamerrorexception",
            "modelerrorexception",
        ),
        "unavailable",
    ),
    **dict.fromkeys(
        ("validationexception", "resourcenotfoundexception", "conflictexception"), "rejected"
    ),
}


# ---------------------------------------------------------------------------------------------
# Wire shapes we read (lenient: unknown fields, like the stream's ``p`` padding, are ignored)


class _In(msgspec.Struct, kw_only=True, rename="camel"):
    pass


class _ToolUse(_In, kw_only=True):
    tool_use_id: str = ""
    name: str = ""
    input: Any = None


class _ReasoningText(_In, kw_only=True):
    text: str = ""
    signature: str | None = None


class _Reasoning(_In, kw_only=True):
    reasoning_text: _ReasoningText | None = None
    redacted_content: str | None = None
    """Base64, as the JSON protocol carries a blob."""

    def thought(self) -> Thought:
        if self.redacted_content is not None:
            return Thought(redacted=self.redacted_content)
        text = self.reasoning_text or _ReasoningText()
        return Thought(text.text, text.signature)


class _Block(_In, kw_only=True):
    text: str | None = None
    tool_use: _ToolUse | None = None
    reasoning_content: _Reasoning | None = None


class _Message(_In, kw_only=True):
    role: str = "assistant"
    content: list[_Block] = []


class _Output(_In, kw_only=True):
    message: _Message | None = None


class _Usage(_In, kw_only=True):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None


class _Response(_In, kw_only=True):
    output: _Output | None = None
    stop_reason: str | None = None
    usage: _Usage | None = None


class _Start(_In, kw_only=True):
    tool_use: _ToolUse | None = None


class _ToolDelta(_In, kw_only=True):
    input: str = ""


class _ReasoningDelta(_In, kw_only=True):
    text: str | None = None
    signature: str | None = None
    redacted_content: str | None = None


class _DeltaBody(_In, kw_only=True):
    text: str | None = None
    tool_use: _ToolDelta | None = None
    reasoning_content: _ReasoningDelta | None = None


class _Event(_In, kw_only=True):
    """The union of every event member's fields: the ``:event-type`` header says which."""

    role: str | None = None
    content_block_index: int = 0
    start: _Start | None = None
    delta: _DeltaBody | None = None
    stop_reason: str | None = None
    usage: _Usage | None = None


class _Error(_In, kw_only=True):
    message: str | None = None
    message_upper: str | None = msgspec.field(default=None, name="Message")
    code: str | None = None
    type_: str | None = msgspec.field(default=None, name="__type")


_RESPONSE = msgspec.json.Decoder(_Response)
_EVENT = msgspec.json.Decoder(_Event)
_ERROR = msgspec.json.Decoder(_Error)


# ---------------------------------------------------------------------------------------------
# Responses


def parse_converse_response(body: bytes, target: Target) -> ChatResponse:
    try:
        response = _RESPONSE.decode(body)
    except msgspec.DecodeError as exc:
        raise malformed(target.provider.name) from exc
    message = response.output.message if response.output is not None else None
    blocks = message.content if message is not None else []
    texts = [b.text for b in blocks if b.text is not None]
    calls = tuple(
        ToolCall(b.tool_use.tool_use_id, b.tool_use.name, _compact(b.tool_use.input))
        for b in blocks
        if b.tool_use is not None
    )
    thoughts = tuple(b.reasoning_content.thought() for b in blocks if b.reasoning_content)
    choice = Choice(
        index=0,
        content="".join(texts) if texts or not calls else None,
        tool_calls=calls or None,
        finish_reason=finish_reason(response.stop_reason),
        reasoning=thoughts or None,
    )
    return ChatResponse(
        # Converse answers carry no id (the x-amzn-requestid header is not ours to see here)
        # and no time: both are made up, unique and now.
        id=f"bedrock-{uuid.uuid4().hex}",
        model=target.upstream_model,
        created=int(time.time()),
        choices=(choice,),
        usage=_usage(response.usage) if response.usage is not None else None,
    )


def finish_reason(reason: str | None) -> FinishReason | None:
    if reason is None:
        return None
    return STOP_REASONS.get(reason, "stop")


def _usage(usage: _Usage) -> Usage:
    """``inputTokens`` excludes prompt-cache reads and writes: the prompt is the sum."""
    read, write = usage.cache_read_input_tokens, usage.cache_write_input_tokens
    return Usage(
        prompt_tokens=usage.input_tokens + (read or 0) + (write or 0),
        completion_tokens=usage.output_tokens,
        cached_tokens=read,
        cache_creation_tokens=write,
    )


def _compact(value: Any) -> str:
    return msgspec.json.encode(value if value is not None else {}).decode()


# ---------------------------------------------------------------------------------------------
# Streams


class BedrockStreamParser:
    """ConverseStream frames (decoded by ``upstream.eventstream``) to canonical events.

    ``done`` is set by ``metadata``, the last event, which carries the usage.
    """

    def __init__(self, target: Target) -> None:
        self._target = target
        self.done = False
        self._asm = StreamAssembler()

    def feed(self, frame: Frame) -> list[StreamEvent]:
        error = _frame_error(frame, self._target)
        if error is not None:
            raise error
        try:
            event = _EVENT.decode(frame.payload) if frame.payload.strip() else _Event()
        except msgspec.DecodeError as exc:
            raise malformed(self._target.provider.name) from exc
        asm = self._asm
        match frame.headers.get(":event-type"):
            case "messageStart":
                asm.role()
            case "contentBlockStart":
                self._block_start(event)
            case "contentBlockDelta":
                self._block_delta(event)
            case "contentBlockStop":
                asm.tool_end(event.content_block_index)
            case "messageStop":
                asm.finish(finish_reason(event.stop_reason) or "stop")
            case "metadata":
                self.done = True
                if event.usage is not None:
                    asm.usage(_usage(event.usage))
            # Event types Bedrock may add later carry nothing for us.
        return asm.drain()

    def _block_start(self, event: _Event) -> None:
        self._asm.role()
        use = event.start.tool_use if event.start is not None else None
        if use is not None:
            self._asm.tool_start(event.content_block_index, use.tool_use_id, use.name)

    def _block_delta(self, event: _Event) -> None:
        delta = event.delta
        if delta is None:
            return
        if delta.text:
            self._asm.text(delta.text)
        elif delta.tool_use is not None:
            self._asm.tool_args(event.content_block_index, delta.tool_use.input)
        elif delta.reasoning_content is not None:
            r = delta.reasoning_content
            self._asm.thought(Thought(r.text or "", r.signature, r.redacted_content))
        # citation and image deltas have no canonical home.


def _frame_error(frame: Frame, target: Target) -> UpstreamError | None:
    """The error an ``exception`` or ``error`` frame reports; None for an event."""
    headers = frame.headers
    match headers.get(":message-type", "event"):
        case "exception":
            name = headers.get(":exception-type", "")
            return classify(None, name, _error_message(frame.payload), {}, target)
        case "error":
            name = headers.get(":error-code", "")
            return classify(None, name, headers.get(":error-message") or None, {}, target)
    return None


# ---------------------------------------------------------------------------------------------
# Errors


def error_name(headers: Mapping[str, str], body: bytes) -> tuple[str, str | None]:
    """The exception name and message of an HTTP error answer.

    The name comes from ``x-amzn-errortype`` (``Name:http://internal...`` decorations and
    ``namespace#`` prefixes stripped, as botocore does) or the body's ``code``/``__type``.
    """
    try:
        error = _ERROR.decode(body)
    except msgspec.DecodeError:
        text = body_text(body).strip()
        error = _Error(message=text or None)
    raw = next((v for k, v in headers.items() if k.lower() == "x-amzn-errortype"), None)
    raw = raw or error.code or error.type_ or ""
    return raw.split(":", 1)[0].rsplit("#", 1)[-1], error.message or error.message_upper


def _error_message(payload: bytes) -> str | None:
    try:
        error = _ERROR.decode(payload)
    except msgspec.DecodeError:
        return body_text(payload).strip() or None
    return error.message or error.message_upper


def classify(
    status: int | None,
    name: str,
    message: str | None,
    headers: Mapping[str, str],
    target: Target,
) -> UpstreamError:
    """Classify by Bedrock's exception name, falling back on the HTTP status.

    ``status`` is None for an exception frame inside a 200 stream: the name decides then, and
    an unknown one is kept in the message, for whoever reads the log.
    """
    kind = _CLASSES.get(name.lower())
    if kind is None and status is None:
        message = f"{name or 'unknown'}: {message or 'no message'}"
    return classify_status(status, message, headers, target.provider.name, kind=kind)
