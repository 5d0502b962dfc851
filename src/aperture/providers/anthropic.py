"""Anthropic Messages API (``POST /v1/messages``).

Pure: builds Messages requests from the canonical model and parses responses, named-event
streams and error envelopes back into it.

Translation choices, in one place:

- ``system`` and ``developer`` messages, wherever they appear, become the top-level
  ``system`` string (paragraphs joined with a blank line): Anthropic has no system turn.
  When a system part carries a cache breakpoint, ``system`` is the list of text blocks.
- Cache breakpoints (canonical ``CacheMark``) on text, image, tool_use and tool_result
  blocks and on tools go back out as the ``cache_control`` the client sent.
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
- Canonical ``reasoning`` becomes ``thinking`` (``_anthropic_request.thinking``); an assistant
  message's signed thoughts go back as ``thinking`` / ``redacted_thinking`` blocks opening its
  turn, and the answer's come back as canonical thoughts, signatures kept.
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
from typing import Any, ClassVar

import msgspec

from aperture.errors import UnsupportedCapabilityError, UpstreamError
from aperture.model import (
    ChatRequest,
    ChatResponse,
    Choice,
    FinishReason,
    StreamEvent,
    Target,
    Thought,
    ToolCall,
    Usage,
)
from aperture.providers._anthropic_request import (
    DEFAULT_MAX_TOKENS,
    IMAGE_MEDIA_TYPES,
    compact,
    messages_body,
)
from aperture.providers._anthropic_spec import DEFAULT_BASE_URL
from aperture.providers._json_body import encode_body
from aperture.providers._status import ErrorClass, body_text, classify_status, malformed
from aperture.providers._stream import StreamAssembler
from aperture.upstream import Framing, SseEvent, UpstreamRequest

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_TOKENS",
    "IMAGE_MEDIA_TYPES",
    "AnthropicProvider",
]

ANTHROPIC_VERSION = "2023-06-01"

_STOP_REASONS: Mapping[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# ``error.details.error_code`` values of a 429 that is a spend cap (the organisation's
# monthly limit for its tier), not a rate limit: it "keeps failing until access resumes".
_SPEND_LIMIT_CODES = frozenset({"enforced_spend_limit_reached"})
# Each documented error type: the HTTP status Anthropic sends it with (an error without a
# status, in a stream or a 200 body, is classified as if it had come with it) and the class it
# names whatever the envelope says. ``invalid_request_error`` names none: Anthropic also uses
# it for other 4xx, so the HTTP status decides.
_TYPES: Mapping[str, tuple[int, ErrorClass | None]] = {
    "invalid_request_error": (400, None),
    "authentication_error": (401, "credentials"),
    "billing_error": (402, "quota"),
    "permission_error": (403, "credentials"),
    "not_found_error": (404, "rejected"),
    "request_too_large": (413, "rejected"),
    "rate_limit_error": (429, "rate_limited"),
    "api_error": (500, "unavailable"),
    "timeout_error": (504, "timeout"),
    "overloaded_error": (529, "unavailable"),
}
_UNTYPED = (500, None)


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
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None
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
    thinking: str | None = None
    signature: str | None = None
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


class _TokenCount(_In, kw_only=True):
    input_tokens: int


# What ``/v1/messages/count_tokens`` takes of a Messages body (MessageCountTokensParams).
_COUNTED_FIELDS = frozenset(
    {"model", "messages", "system", "thinking", "tools", "tool_choice", "cache_control"}
)

_COUNT = msgspec.json.Decoder(_TokenCount)
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
        if request.n is not None and request.n > 1:
            raise UnsupportedCapabilityError(
                "Anthropic returns one choice per request; n must be 1.", param="n"
            )
        body = messages_body(request, target.upstream_model)
        if request.stream:
            body["stream"] = True
        return self._post(target, "/v1/messages", body)

    def count_request(self, request: ChatRequest, target: Target) -> UpstreamRequest:
        """``POST /v1/messages/count_tokens`` for ``request``: the fields that endpoint
        takes (no ``max_tokens``, sampling, stop or metadata)."""
        body = messages_body(request, target.upstream_model)
        counted = {k: v for k, v in body.items() if k in _COUNTED_FIELDS}
        return self._post(target, "/v1/messages/count_tokens", counted)

    @staticmethod
    def parse_count(body: bytes, target: Target) -> int:
        try:
            return _COUNT.decode(body).input_tokens
        except msgspec.DecodeError as exc:
            raise malformed(target.provider.name) from exc

    @staticmethod
    def _post(target: Target, path: str, body: dict[str, Any]) -> UpstreamRequest:
        provider = target.provider
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
            **provider.headers,
        }
        if provider.api_key:
            headers["x-api-key"] = provider.api_key
        base = (provider.base_url or DEFAULT_BASE_URL).rstrip("/")
        return UpstreamRequest(f"{base}{path}", headers, encode_body(body))

    def parse_response(self, body: bytes, target: Target) -> ChatResponse:
        try:
            message = _MESSAGE.decode(body)
        except msgspec.DecodeError as exc:
            raise malformed(target.provider.name) from exc
        if message.type == "error" or message.error is not None:
            raise _classify(200, message.error or _ErrorObject(), {}, target)
        texts = [b.text for b in message.content if b.type == "text" and b.text is not None]
        calls = tuple(
            ToolCall(b.id or "", b.name or "", compact(b.input))
            for b in message.content
            if b.type == "tool_use"
        )
        thoughts = tuple(
            Thought(redacted=b.data)
            if b.type == "redacted_thinking"
            else Thought(b.thinking or "", b.signature)
            for b in message.content
            if b.type in ("thinking", "redacted_thinking")
        )
        choice = Choice(
            index=0,
            content="".join(texts) if texts or not calls else None,
            tool_calls=calls or None,
            finish_reason=_finish_reason(message.stop_reason),
            reasoning=thoughts or None,
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
            text = error if isinstance(error, str) else body_text(body)
            error = _ErrorObject(message=text.strip() or None)
        return _classify(status, error, headers, target)


# ---------------------------------------------------------------------------------------------
# Streams


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
        self._totals = _Usage()
        self._asm = StreamAssembler()

    def feed(self, event: SseEvent) -> list[StreamEvent]:
        if event.event == "ping" or not event.data.strip():
            return []
        try:
            data = _EVENT.decode(event.data)
        except msgspec.DecodeError as exc:
            raise malformed(self._target.provider.name) from exc
        asm = self._asm
        match data.type or event.event:
            case "message_start":
                self._message_start(data.message)
            case "content_block_start":
                self._block_start(data.index, data.content_block)
            case "content_block_delta":
                self._block_delta(data.index, data.delta)
            case "content_block_stop":
                asm.tool_end(data.index)
            case "message_delta":
                self._message_delta(data)
            case "message_stop":
                self.done = True
                asm.usage(_usage(self._totals))
            case "error":
                raise _classify(None, data.error or _ErrorObject(), {}, self._target)
            # ping, and event types Anthropic may add later, carry nothing for us.
        return asm.drain()

    def _message_start(self, message: _Message | None) -> None:
        if message is not None:
            self.id, self.model = message.id, message.model
            self._add_usage(message.usage)
        self._asm.role()

    def _message_delta(self, data: _Event) -> None:
        self._add_usage(data.usage)
        reason = data.delta.stop_reason if data.delta is not None else None
        if reason:
            self._asm.finish(_finish_reason(reason) or "stop")

    def _add_usage(self, usage: _Usage | None) -> None:
        """Take every count present: Anthropic's stream usage is cumulative, not incremental."""
        if usage is not None:
            present = {
                f: v for f in usage.__struct_fields__ if (v := getattr(usage, f)) is not None
            }
            self._totals = msgspec.structs.replace(self._totals, **present)

    def _block_start(self, index: int, block: _Block | None) -> None:
        asm = self._asm
        asm.role()
        if block is None:
            return
        if block.type == "text":
            asm.text(block.text)
        elif block.type == "tool_use":
            asm.tool_start(index, block.id, block.name)
        elif block.type == "thinking":
            asm.thought(Thought(block.thinking or "", block.signature))
        elif block.type == "redacted_thinking":
            asm.thought(Thought(redacted=block.data))

    def _block_delta(self, index: int, delta: _DeltaBody | None) -> None:
        if delta is None:
            return
        if delta.type == "text_delta":
            self._asm.text(delta.text)
        elif delta.type == "input_json_delta":
            self._asm.tool_args(index, delta.partial_json)
        elif delta.type == "thinking_delta":
            self._asm.thought(Thought(delta.thinking or ""))
        elif delta.type == "signature_delta":
            self._asm.thought(Thought(signature=delta.signature))
        # citations_delta has no canonical home.


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
        cache_creation_tokens=usage.cache_creation_input_tokens,
        reasoning_tokens=details.thinking_tokens if details is not None else None,
    )


def _classify(
    status: int | None, error: _ErrorObject, headers: Mapping[str, str], target: Target
) -> UpstreamError:
    """Classify by Anthropic's documented error types, then the shared status ladder; never by
    message text.

    A spent balance or spend cap is a quota error: ``billing_error`` (402), or a 429 whose
    ``error.details.error_code`` is a spend-limit code. Anthropic also answers a spent credit
    balance and a workspace's own spend limit with a 400 ``invalid_request_error`` whose only
    signal is the message; those stay refusals (not retried, not failed over), as no
    structured field tells them from a bad request.
    """
    typed, kind = _TYPES.get(error.type or "", _UNTYPED)
    details = error.details
    if isinstance(details, dict) and details.get("error_code") in _SPEND_LIMIT_CODES:
        kind = "quota"
    # Anthropic's message names a path into ITS body (system hoisted, turns merged), which is
    # not the client's: no ``param`` is derived from it.
    return classify_status(
        typed if status is None or status == 200 else status,
        error.message,
        headers,
        target.provider.name,
        kind=kind,
    )
