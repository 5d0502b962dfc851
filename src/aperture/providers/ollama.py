"""Ollama's native chat API (``POST /api/chat``), streamed as NDJSON.

Pure: builds ``/api/chat`` requests (``_ollama_request``) and parses responses, NDJSON
streams and error bodies back into the canonical model. ``stream_framing`` tells dispatch
to split the body into lines (``aperture.upstream.ndjson``) instead of SSE events; the
stream parser's ``feed()`` takes those lines (an ``SseEvent`` also works: its ``data``).

Translation choices, in one place:

- ``content`` is a string on Ollama: a message's text parts are joined with a newline, and
  its images go to the message's ``images`` list as bare base64 (no ``data:`` prefix: the
  server decodes the field as base64 and rejects a prefix with ``illegal base64 data``).
  Images attach to the message, not to a position in the text; that is Ollama's model.
- Ollama never fetches URLs: an http(s) image raises ``ImageUrlNotSupportedError`` telling
  the operator to set ``url_policy`` to ``fetch`` or ``auto`` so the gateway downloads it.
- ``developer`` messages become ``system``. Tool results carry ``tool_name`` (looked up from
  the assistant call they answer): Ollama matches results to calls by name, not id.
- Assistant ``tool_calls`` history sends ``arguments`` as a JSON object, as Ollama wants.
- Sampling goes into ``options`` (``num_predict`` is the output cap). ``stream`` is always
  sent: Ollama streams unless told otherwise.
- ``response_format``: ``json_object`` → ``format: "json"``; ``json_schema`` → the schema
  object itself in ``format`` (Ollama's structured outputs).
- Ollama has no ``tool_choice``: ``none`` sends no tools; a named choice sends only that
  tool; ``required`` cannot be enforced and sends every tool. ``n > 1`` is refused.
  ``user`` and ``parallel_tool_calls`` have no Ollama field and are dropped.
- Responses carry no id and tool calls may carry none: both are derived from a hash of what
  Ollama sent, so they are stable for the same answer.
- ``done_reason: "stop"`` with tool calls is reported as ``tool_calls`` (Ollama says
  ``stop`` either way).
- ``extra`` (OpenAI-dialect top-level fields) is NOT forwarded: it is not Ollama's dialect.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import msgspec

from aperture.errors import (
    UpstreamError,
)
from aperture.model import (
    ChatRequest,
    ChatResponse,
    Choice,
    FinishReason,
    StreamEvent,
    Target,
    ToolCall,
    Usage,
)
from aperture.providers._json_body import encode_body
from aperture.providers._logprobs import WireToken, from_tokens
from aperture.providers._ollama_request import build_body
from aperture.providers._ollama_spec import DEFAULT_BASE_URL
from aperture.providers._status import body_text, classify_status, malformed
from aperture.providers._stream import StreamAssembler
from aperture.upstream import Framing, SseEvent, UpstreamRequest

__all__ = ["DEFAULT_BASE_URL", "OllamaProvider"]


class _In(msgspec.Struct, kw_only=True):
    pass


class _Function(_In, kw_only=True):
    name: str = ""
    arguments: Any = None


class _ToolCall(_In, kw_only=True):
    id: str | None = None
    function: _Function = msgspec.field(default_factory=_Function)


class _Message(_In, kw_only=True):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Chunk(_In, kw_only=True):
    """One ``/api/chat`` object: the whole answer, or one NDJSON line of a stream."""

    model: str = ""
    created_at: str | None = None
    message: _Message | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    error: Any = None
    logprobs: list[WireToken] | None = None
    """The tokens of this object's content (OpenAI's token shape, as a bare list), when asked."""


_CHUNK = msgspec.json.Decoder(_Chunk)


class OllamaProvider:
    """The ``ollama`` provider kind."""

    stream_framing: ClassVar[Framing] = "ndjson"
    stream_ends_with_body: ClassVar[bool] = False

    def build_request(self, request: ChatRequest, target: Target) -> UpstreamRequest:
        provider = target.provider
        body = build_body(request, target.upstream_model)
        # request.extra is deliberately not forwarded (OpenAI-dialect extras; see module doc).
        headers = {"Content-Type": "application/json", **provider.headers}
        if provider.api_key:
            # Ollama itself has no auth; a key is for Ollama's cloud or a proxy in front.
            headers["Authorization"] = f"Bearer {provider.api_key}"
        base = (provider.base_url or DEFAULT_BASE_URL).rstrip("/")
        return UpstreamRequest(f"{base}/api/chat", headers, encode_body(body))

    def parse_response(self, body: bytes, target: Target) -> ChatResponse:
        try:
            chunk = _CHUNK.decode(body)
        except msgspec.DecodeError as exc:
            raise malformed(target.provider.name) from exc
        if chunk.error is not None:
            raise _classify(500, _error_text(chunk.error), {}, target)
        message = chunk.message or _Message()
        calls = tuple(
            _tool_call(call, i, chunk.created_at) for i, call in enumerate(message.tool_calls or ())
        )
        text = message.content or ""
        choice = Choice(
            index=0,
            content=text if text or not calls else None,
            tool_calls=calls or None,
            finish_reason=_finish_reason(chunk.done_reason, bool(calls)),
            logprobs=from_tokens(chunk.logprobs),
        )
        return ChatResponse(
            id=f"ollama-{hashlib.sha256(body).hexdigest()[:24]}",
            model=chunk.model or target.upstream_model,
            created=_created(chunk.created_at),
            choices=(choice,),
            usage=_usage(chunk),
        )

    def stream_parser(self, target: Target) -> _StreamParser:
        return _StreamParser(target)

    def parse_error(
        self, status: int, body: bytes, headers: Mapping[str, str], target: Target
    ) -> UpstreamError:
        try:
            error = _CHUNK.decode(body).error
        except msgspec.DecodeError:
            error = None
        text = _error_text(error) if error is not None else body_text(body)
        return _classify(status, text, headers, target)


class _StreamParser:
    """Ollama's NDJSON objects to canonical events; the ``done: true`` object ends the stream."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self.done = False
        self._asm = StreamAssembler()

    def feed(self, frame: str | SseEvent) -> list[StreamEvent]:
        line = frame.data if isinstance(frame, SseEvent) else frame
        if not line.strip() or self.done:
            return []
        try:
            chunk = _CHUNK.decode(line)
        except msgspec.DecodeError as exc:
            raise malformed(self._target.provider.name) from exc
        if chunk.error is not None:
            # The status is already 200: an in-band error means the model run failed.
            raise _classify(None, _error_text(chunk.error), {}, self._target)
        asm = self._asm
        asm.role()
        message = chunk.message
        if message is not None:
            asm.text(message.content, 0, from_tokens(chunk.logprobs))
            for call in message.tool_calls or ():
                # Ollama streams each tool call whole, in one object: one delta carries it all.
                full = _tool_call(call, asm.tool_count(), chunk.created_at)
                asm.tool_call(full.id, full.name, full.arguments)
        if chunk.done:
            self.done = True
            asm.finish(_finish_reason(chunk.done_reason, asm.tool_count() > 0))
            asm.usage(_usage(chunk))
        return asm.drain()


# ---------------------------------------------------------------------------------------------
# Responses and errors


def _tool_call(call: _ToolCall, index: int, created_at: str | None) -> ToolCall:
    arguments = call.function.arguments
    if isinstance(arguments, str):
        encoded = arguments  # an OpenAI-style string from a proxy: already JSON text
    else:
        encoded = msgspec.json.encode(arguments if arguments is not None else {}).decode()
    call_id = call.id
    if not call_id:
        seed = f"{created_at}|{index}|{call.function.name}|{encoded}"
        call_id = f"call_{hashlib.sha256(seed.encode()).hexdigest()[:24]}"
    return ToolCall(call_id, call.function.name, encoded)


def _finish_reason(reason: str | None, called: bool) -> FinishReason:
    if reason == "length":
        return "length"
    # "stop", and "load"/"unload" (a request that only loaded the model), end normally.
    return "tool_calls" if called else "stop"


def _usage(chunk: _Chunk) -> Usage:
    # Ollama leaves zero counts out of its JSON (Go omitempty): absent means 0.
    return Usage(
        prompt_tokens=chunk.prompt_eval_count or 0, completion_tokens=chunk.eval_count or 0
    )


def _created(created_at: str | None) -> int:
    if created_at:
        try:
            return int(datetime.fromisoformat(created_at).timestamp())
        except ValueError:
            pass
    return int(time.time())


def _error_text(error: Any) -> str:
    if isinstance(error, str):
        return error
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return msgspec.json.encode(error).decode()


def _classify(
    status: int | None, said: str, headers: Mapping[str, str], target: Target
) -> UpstreamError:
    """Classify by HTTP status: Ollama's error body is a bare message with no code.

    404 is Ollama's "model not found, try pulling it first": a refusal of the request.
    """
    return classify_status(status, said.strip(), headers, target.provider.name)
