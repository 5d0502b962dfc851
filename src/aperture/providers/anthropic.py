"""Anthropic Messages API (``POST /v1/messages``).

Pure: builds Messages requests from the canonical model and parses responses, named-event
streams and error envelopes back into it.

Translation choices, in one place:

- ``system`` and ``developer`` messages, wherever they appear, become the top-level
  ``system`` string (paragraphs joined with a blank line): Anthropic has no system turn.
- ``tool`` messages become ``tool_result`` blocks in a user turn; assistant ``tool_calls``
  become ``tool_use`` blocks whose ``input`` is the parsed JSON arguments.
- Consecutive turns of the same role are merged (Anthropic wants user/assistant
  alternation); inside a merged user turn the ``tool_result`` blocks are moved first, as
  Anthropic requires them to open the turn that follows the ``tool_use``. Empty and
  whitespace-only text parts are dropped (Anthropic rejects such text blocks) and so are
  turns left empty.
- Images: inline ones are sent as base64 with the sniffed media type (``image/jpg`` never
  goes out), URLs as ``url`` sources. Anthropic has no ``detail``: it is dropped, as is a
  message's ``name``.
- ``max_tokens`` is required by Anthropic: ``DEFAULT_MAX_TOKENS`` when the client sent none.
- ``response_format`` has no Anthropic field: JSON mode is emulated with an instruction
  appended to ``system`` (see ``json_instruction``).
- ``user`` becomes ``metadata.user_id``; ``parallel_tool_calls: false`` becomes
  ``disable_parallel_tool_use``; ``n > 1`` is refused; ``seed``, ``presence_penalty`` and
  ``frequency_penalty`` have no Anthropic equivalent and are dropped.
- ``extra`` (top-level fields the client dialect does not model) is NOT forwarded: those are
  OpenAI-dialect extras and Anthropic answers unknown fields with a 400.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from aperture.errors import UnsupportedCapabilityError, UpstreamError
from aperture.model import (
    ChatRequest,
    ChatResponse,
    Choice,
    Delta,
    Finish,
    FinishReason,
    StreamEvent,
    Target,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from aperture.providers._anthropic_request import (
    IMAGE_MEDIA_TYPES,
    compact,
    conversation,
    json_instruction,
    tool,
    tool_choice,
)
from aperture.providers._anthropic_spec import DEFAULT_BASE_URL
from aperture.providers._status import classify_status
from aperture.upstream import Framing, SseEvent, UpstreamRequest

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_TOKENS",
    "IMAGE_MEDIA_TYPES",
    "AnthropicProvider",
]

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
"""Sent when the client gave no ``max_tokens``: Anthropic requires the field."""
"""Exactly what Anthropic accepts as ``source.media_type``; ``image/jpg`` is refused."""

_MAX_MESSAGE = 500

_STOP_REASONS: Mapping[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# An error type seen without an HTTP status (in-band stream errors) is classified as if it
# had come with the status Anthropic documents for it.
# ``error.details.error_code`` values of a 429 that is a spend cap (the organisation's
# monthly limit for its tier), not a rate limit: it "keeps failing until access resumes".
_SPEND_LIMIT_CODES = frozenset({"enforced_spend_limit_reached"})
_TYPE_STATUS: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


# ---------------------------------------------------------------------------------------------
# Wire shapes we read (lenient: unknown fields are ignored, absent ones default)


class _In(msgspec.Struct, kw_only=True):
    pass


class _OutputDetails(_In, kw_only=True):
    thinking_tokens: int | None = None


class _Usage(_In, kw_only=True):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens_details: _OutputDetails | None = None


class _Block(_In, kw_only=True):
    type: str = ""
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None


class _ErrorObject(_In, kw_only=True):
    type: str | None = None
    message: str | None = None
    details: Any = None  # {"error_code": ...} on a spend-limit 429


class _Message(_In, kw_only=True):
    type: str = "message"
    id: str = ""
    model: str = ""
    content: list[_Block] = []
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: _Usage | None = None
    error: _ErrorObject | None = None


class _DeltaBody(_In, kw_only=True):
    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    stop_reason: str | None = None


class _Event(_In, kw_only=True):
    type: str = ""
    message: _Message | None = None
    index: int = 0
    content_block: _Block | None = None
    delta: _DeltaBody | None = None
    usage: _Usage | None = None
    error: _ErrorObject | None = None


class _ErrorEnvelope(_In, kw_only=True):
    error: _ErrorObject | str | None = None


_MESSAGE = msgspec.json.Decoder(_Message)
_EVENT = msgspec.json.Decoder(_Event)
_ERROR = msgspec.json.Decoder(_ErrorEnvelope)


# ---------------------------------------------------------------------------------------------
# The adapter


class AnthropicProvider:
    """The ``anthropic`` provider kind."""

    stream_framing: ClassVar[Framing] = "sse"
    stream_ends_with_body: ClassVar[bool] = False

    def build_request(self, request: ChatRequest, target: Target) -> UpstreamRequest:
        provider = target.provider
        if request.n is not None and request.n > 1:
            raise UnsupportedCapabilityError(
                "Anthropic returns one choice per request; n must be 1.", param="n"
            )
        system, turns = conversation(request.messages)
        instruction = json_instruction(request.response_format)
        if instruction is not None:
            system.append(instruction)
        body: dict[str, Any] = {
            "model": target.upstream_model,
            "max_tokens": request.max_tokens
            if request.max_tokens is not None
            else DEFAULT_MAX_TOKENS,
        }
        if system:
            body["system"] = "\n\n".join(system)
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
        if request.stream:
            body["stream"] = True
        # request.extra is deliberately not forwarded (OpenAI-dialect extras; see module doc).
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
            **provider.headers,
        }
        if provider.api_key:
            headers["x-api-key"] = provider.api_key
        base = (provider.base_url or DEFAULT_BASE_URL).rstrip("/")
        return UpstreamRequest(f"{base}/v1/messages", headers, msgspec.json.encode(body))

    def parse_response(self, body: bytes, target: Target) -> ChatResponse:
        try:
            message = _MESSAGE.decode(body)
        except msgspec.DecodeError as exc:
            raise _malformed(target) from exc
        if message.type == "error" or message.error is not None:
            raise _classify(200, message.error or _ErrorObject(), {}, target)
        texts = [b.text for b in message.content if b.type == "text" and b.text is not None]
        calls = tuple(
            ToolCall(b.id or "", b.name or "", compact(b.input))
            for b in message.content
            if b.type == "tool_use"
        )
        choice = Choice(
            index=0,
            content="".join(texts) if texts or not calls else None,
            tool_calls=calls or None,
            finish_reason=_finish_reason(message.stop_reason),
        )
        return ChatResponse(
            id=message.id,
            model=message.model,
            # Anthropic sends no creation time; the answer was created just now.
            created=int(time.time()),
            choices=(choice,),
            usage=_usage(message.usage) if message.usage is not None else None,
        )

    def stream_parser(self, target: Target) -> _StreamParser:
        return _StreamParser(target)

    def parse_error(
        self, status: int, body: bytes, headers: Mapping[str, str], target: Target
    ) -> UpstreamError:
        try:
            error = _ERROR.decode(body).error
        except msgspec.DecodeError:
            error = None
        if not isinstance(error, _ErrorObject):
            text = error if isinstance(error, str) else body[:_MAX_MESSAGE].decode(errors="replace")
            error = _ErrorObject(message=text.strip() or None)
        return _classify(status, error, headers, target)


# ---------------------------------------------------------------------------------------------
# Streams


@dataclass(slots=True)
class _Totals:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation: int | None = None
    cache_read: int | None = None
    details: _OutputDetails | None = None

    def add(self, usage: _Usage) -> None:
        """Take every count present: Anthropic's stream usage is cumulative, not incremental."""
        if usage.input_tokens is not None:
            self.input_tokens = usage.input_tokens
        if usage.output_tokens is not None:
            self.output_tokens = usage.output_tokens
        if usage.cache_creation_input_tokens is not None:
            self.cache_creation = usage.cache_creation_input_tokens
        if usage.cache_read_input_tokens is not None:
            self.cache_read = usage.cache_read_input_tokens
        if usage.output_tokens_details is not None:
            self.details = usage.output_tokens_details

    def usage(self) -> Usage:
        return _usage(
            _Usage(
                input_tokens=self.input_tokens,
                output_tokens=self.output_tokens,
                cache_creation_input_tokens=self.cache_creation,
                cache_read_input_tokens=self.cache_read,
                output_tokens_details=self.details,
            )
        )


@dataclass(slots=True)
class _ToolBlock:
    index: int
    """The canonical tool call index: tool_use blocks counted 0, 1, 2... in stream order."""
    has_arguments: bool = False


class _StreamParser:
    """Anthropic's named events to canonical ones.

    ``id`` and ``model`` hold what ``message_start`` said, for callers that want them: the
    canonical stream events carry neither.
    """

    def __init__(self, target: Target) -> None:
        self._target = target
        self.done = False
        self.id = ""
        self.model = ""
        self._started = False
        self._totals = _Totals()
        self._tools: dict[int, _ToolBlock] = {}
        self._tool_count = 0

    def feed(self, event: SseEvent) -> list[StreamEvent]:
        if event.event == "ping" or not event.data.strip():
            return []
        try:
            data = _EVENT.decode(event.data)
        except msgspec.DecodeError as exc:
            raise _malformed(self._target) from exc
        kind = data.type or event.event
        match kind:
            case "message_start":
                return self._message_start(data)
            case "content_block_start":
                return self._block_start(data)
            case "content_block_delta":
                return self._block_delta(data)
            case "content_block_stop":
                return self._block_stop(data)
            case "message_delta":
                if data.usage is not None:
                    self._totals.add(data.usage)
                reason = data.delta.stop_reason if data.delta is not None else None
                return [Finish(0, _finish_reason(reason) or "stop")] if reason else []
            case "message_stop":
                self.done = True
                return [UsageReport(self._totals.usage())]
            case "error":
                raise _classify(None, data.error or _ErrorObject(), {}, self._target)
        # ping, and event types Anthropic may add later, carry nothing for us.
        return []

    def _role(self) -> list[StreamEvent]:
        if self._started:
            return []
        self._started = True
        return [Delta(index=0, role="assistant", content="")]

    def _message_start(self, data: _Event) -> list[StreamEvent]:
        message = data.message
        if message is not None:
            self.id, self.model = message.id, message.model
            if message.usage is not None:
                self._totals.add(message.usage)
        return self._role()

    def _block_start(self, data: _Event) -> list[StreamEvent]:
        block = data.content_block
        events = self._role()
        if block is None:
            return events
        if block.type == "text" and block.text:
            events.append(Delta(index=0, content=block.text))
        elif block.type == "tool_use":
            tool = _ToolBlock(self._tool_count)
            self._tools[data.index] = tool
            self._tool_count += 1
            call = ToolCallDelta(tool.index, id=block.id, name=block.name, arguments="")
            events.append(Delta(index=0, tool_calls=(call,)))
        return events

    def _block_delta(self, data: _Event) -> list[StreamEvent]:
        delta = data.delta
        if delta is None:
            return []
        if delta.type == "text_delta" and delta.text:
            return [*self._role(), Delta(index=0, content=delta.text)]
        tool = self._tools.get(data.index)
        if delta.type == "input_json_delta" and tool is not None and delta.partial_json:
            tool.has_arguments = True
            call = ToolCallDelta(tool.index, arguments=delta.partial_json)
            return [Delta(index=0, tool_calls=(call,))]
        # thinking_delta, signature_delta and citations_delta have no canonical home.
        return []

    def _block_stop(self, data: _Event) -> list[StreamEvent]:
        tool = self._tools.pop(data.index, None)
        if tool is None or tool.has_arguments:
            return []
        # A tool called without input streams no JSON at all; clients parse the arguments.
        return [Delta(index=0, tool_calls=(ToolCallDelta(tool.index, arguments="{}"),))]


def _finish_reason(reason: str | None) -> FinishReason | None:
    if reason is None:
        return None
    return _STOP_REASONS.get(reason, "stop")


def _usage(usage: _Usage) -> Usage:
    """Anthropic's ``input_tokens`` excludes cached input: the prompt is the sum of all three."""
    cache_read = usage.cache_read_input_tokens
    prompt = (
        (usage.input_tokens or 0) + (cache_read or 0) + (usage.cache_creation_input_tokens or 0)
    )
    details = usage.output_tokens_details
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=usage.output_tokens or 0,
        cached_tokens=cache_read,
        reasoning_tokens=details.thinking_tokens if details is not None else None,
    )


def _malformed(target: Target) -> UpstreamError:
    name = target.provider.name
    return UpstreamError(f"{name} sent a response that is not valid JSON.", provider=name)


def _classify(
    status: int | None, error: _ErrorObject, headers: Mapping[str, str], target: Target
) -> UpstreamError:
    """Classify by Anthropic's documented error types, then the shared status ladder; never by
    message text.

    A documented type names its status (``rate_limit_error`` is a 429 whatever the envelope
    says), except ``invalid_request_error``, which Anthropic also uses for other 4xx, so the
    HTTP status stands. ``status`` is None for an error reported inside a 200 stream: the type
    decides then. A spent balance or spend cap is a quota error: ``billing_error`` (402), or
    a 429 whose ``error.details.error_code`` is a spend-limit code.

    Anthropic also answers a spent credit balance and a workspace's own spend limit with a
    400 ``invalid_request_error`` whose only signal is the message; those stay refusals
    (not retried, not failed over), as no structured field tells them from a bad request.
    """
    kind = error.type or ""
    typed = _TYPE_STATUS.get(kind)
    if typed is not None and kind != "invalid_request_error":
        effective = typed
    elif status is not None and status != 200:
        effective = status
    else:
        effective = typed or 500
    said = (error.message or "no message")[:_MAX_MESSAGE]
    # Anthropic's message names a path into ITS body (system hoisted, turns merged), which is
    # not the client's: no ``param`` is derived from it.
    error_ = classify_status(effective, said, headers, target.provider.name, quota=_spent(error))
    if status is not None and status != 200:
        error_.upstream_status = status  # what Anthropic answered, for logs and 4xx pass-through
    return error_


def _spent(error: _ErrorObject) -> bool:
    if error.type == "billing_error":
        return True
    details = error.details
    return isinstance(details, dict) and details.get("error_code") in _SPEND_LIMIT_CODES
