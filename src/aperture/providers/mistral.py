"""Mistral's chat completions API (``POST /v1/chat/completions``), streamed as SSE.

Pure: builds requests (``_mistral_request``) and parses responses, streams and error bodies.
The wire is OpenAI-like; the differences are the point of this adapter:

- Image parts go out as ``{"type": "image_url", "image_url": "<data URI or URL>"}`` (the
  documented string form), or ``{"url", "detail"}`` when the client set ``detail``. They
  always stay image parts: never flattened to text (a gateway once sent Mistral a
  stringified placeholder instead). Mistral fetches http(s) URLs itself and refuses more
  than 8 images per request (the gateway's limits table enforces that before we get here).
- Tool call ids must match ``[A-Za-z0-9]{9}``: ids that do not (OpenAI's ``call_...``) are
  replaced by a stable 9-character hash, the same for a call and for the result answering
  it (``mistral_tool_call_id``). Mistral's own ids already match and pass through untouched
  both ways. Tool results also carry the function ``name``.
- ``seed`` → ``random_seed``; ``tool_choice: "required"`` → ``"any"``; ``developer`` →
  ``system``; audio parts → ``input_audio``. ``safe_prompt`` is never sent; ``user`` has
  no Mistral field and is dropped. Usage arrives in the last stream chunk unasked.
- ``finish_reason``: ``model_length`` → ``length``; ``error`` raises (the answer failed).
- ``extra`` (OpenAI-dialect top-level fields) is NOT forwarded: Mistral answers unknown
  fields with a 422 ``extra_forbidden``.

``base_url`` is the API root (``https://api.mistral.ai``); one ending in ``/v1`` is accepted
too, without doubling it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from aperture.errors import (
    UpstreamError,
    UpstreamUnavailableError,
)
from aperture.model import (
    ChatRequest,
    ChatResponse,
    Choice,
    Delta,
    FinishReason,
    StreamEvent,
    Target,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from aperture.providers._json_body import encode_body
from aperture.providers._logprobs import WireLogprobs, from_tokens
from aperture.providers._mistral_request import build_body, mistral_tool_call_id
from aperture.providers._mistral_spec import DEFAULT_BASE_URL
from aperture.providers._status import body_text, classify_status, malformed
from aperture.providers._stream import StreamAssembler
from aperture.upstream import Framing, SseEvent, UpstreamRequest

__all__ = ["DEFAULT_BASE_URL", "MistralProvider", "mistral_tool_call_id"]

_FINISH_REASONS: Mapping[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "model_length": "length",
    "tool_calls": "tool_calls",
}
# Mistral's spent-budget answers are a 402 whose ``type`` names the limit, e.g.
# ``billing_customer_monthly_spending_limit_reached`` (code "2300") or
# ``billing_api_budget_exhausted`` (code "2303"): every ``billing_`` type is a spent budget,
# whatever status carries it, and is never retried.
_BILLING_TYPE_PREFIX = "billing_"


class _In(msgspec.Struct, kw_only=True):
    pass


class _Function(_In, kw_only=True):
    name: str | None = None
    arguments: Any = None


class _ToolCall(_In, kw_only=True):
    id: str | None = None
    index: int | None = None
    function: _Function = msgspec.field(default_factory=_Function)


class _Chunk(_In, kw_only=True):
    type: str | None = None
    text: str | None = None


class _Message(_In, kw_only=True):
    role: str | None = None
    content: str | list[_Chunk] | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(_In, kw_only=True):
    index: int = 0
    message: _Message | None = None
    delta: _Message | None = None
    finish_reason: str | None = None
    logprobs: WireLogprobs | None = None


class _Usage(_In, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Completion(_In, kw_only=True):
    id: str = ""
    object: str | None = None
    created: int = 0
    model: str = ""
    choices: list[_Choice] = []
    usage: _Usage | None = None
    message: Any = None
    """Set on an error body (``{"object": "error", "message": ...}``)."""
    type: str | None = None


class _ErrorBody(_In, kw_only=True):
    message: Any = None
    detail: Any = None
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


_COMPLETION = msgspec.json.Decoder(_Completion)
_ERROR = msgspec.json.Decoder(_ErrorBody)


class MistralProvider:
    """The ``mistral`` provider kind."""

    stream_framing: ClassVar[Framing] = "sse"
    stream_ends_with_body: ClassVar[bool] = False

    def build_request(self, request: ChatRequest, target: Target) -> UpstreamRequest:
        provider = target.provider
        body = build_body(request, target.upstream_model)
        # request.extra is deliberately not forwarded (OpenAI-dialect extras; see module doc).
        headers = {"Content-Type": "application/json", **provider.headers}
        if provider.api_key:
            headers["Authorization"] = f"Bearer {provider.api_key}"
        base = (provider.base_url or DEFAULT_BASE_URL).rstrip("/").removesuffix("/v1")
        return UpstreamRequest(f"{base}/v1/chat/completions", headers, encode_body(body))

    def parse_response(self, body: bytes, target: Target) -> ChatResponse:
        try:
            completion = _COMPLETION.decode(body)
        except msgspec.DecodeError as exc:
            raise malformed(target.provider.name) from exc
        if completion.object == "error":
            raise _classify(None, _ErrorBody(message=completion.message), {}, target)
        return ChatResponse(
            id=completion.id,
            model=completion.model or target.upstream_model,
            created=completion.created,
            choices=tuple(_choice(c, target) for c in completion.choices),
            usage=_usage(completion.usage) if completion.usage is not None else None,
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
    def __init__(self, target: Target) -> None:
        self._target = target
        self.done = False
        self._asm = StreamAssembler()
        self._last: dict[tuple[int, int], int] = {}
        """(choice, Mistral's index) -> canonical index, for continuations without an id."""

    def feed(self, event: SseEvent) -> list[StreamEvent]:
        if event.data == "[DONE]":
            self.done = True
            return []
        if not event.data.strip():
            return []
        try:
            chunk = _COMPLETION.decode(event.data)
        except msgspec.DecodeError as exc:
            raise malformed(self._target.provider.name) from exc
        if chunk.object == "error" or (chunk.message is not None and not chunk.choices):
            raise _classify(None, _ErrorBody(message=chunk.message), {}, self._target)
        asm = self._asm
        for choice in chunk.choices:
            if choice.delta is not None:
                logprobs = choice.logprobs.content if choice.logprobs is not None else None
                self._delta(choice.index, choice.delta, from_tokens(logprobs) or None)
            if choice.finish_reason is not None:
                asm.finish(_finish_reason(choice.finish_reason, self._target), choice.index)
        if chunk.usage is not None:
            asm.usage(_usage(chunk.usage))
        return asm.drain()

    def _delta(
        self, choice: int, delta: _Message, logprobs: tuple[TokenLogprob, ...] | None
    ) -> None:
        text = _text(delta.content)
        calls = self._tool_calls(choice, delta.tool_calls or [])
        if delta.role or text or calls:
            content = text if text or delta.role else None
            self._asm.delta(Delta(choice, delta.role, content, tool_calls=calls, logprobs=logprobs))

    def _tool_calls(self, choice: int, calls: list[_ToolCall]) -> tuple[ToolCallDelta, ...] | None:
        deltas = []
        for position, call in enumerate(calls):
            mistral_index = call.index if call.index is not None else position
            if call.id:
                # Mistral sends each call whole, often all with index 0: the id tells them apart.
                index = self._asm.tool_index((choice, call.id), choice)
                self._last[(choice, mistral_index)] = index
            else:
                index = self._last.get((choice, mistral_index), mistral_index)
            deltas.append(
                ToolCallDelta(index, call.id, call.function.name, _arguments(call.function))
            )
        return tuple(deltas) or None


def _text(content: str | list[_Chunk] | None) -> str | None:
    if content is None or isinstance(content, str):
        return content
    # Reasoning models send chunk lists; only text chunks are answer text.
    return "".join(c.text for c in content if c.type == "text" and c.text) or None


def _arguments(function: _Function) -> str | None:
    arguments = function.arguments
    if arguments is None or isinstance(arguments, str):
        return arguments
    return msgspec.json.encode(arguments).decode()  # an object: Mistral allows both


def _choice(choice: _Choice, target: Target) -> Choice:
    message = choice.message or _Message()
    calls = tuple(
        ToolCall(c.id or "", c.function.name or "", _arguments(c.function) or "{}")
        for c in message.tool_calls or ()
    )
    text = _text(message.content)
    return Choice(
        index=choice.index,
        content=text if text is not None or not calls else None,
        tool_calls=calls or None,
        finish_reason=_finish_reason(choice.finish_reason, target),
        logprobs=from_tokens(choice.logprobs.content) if choice.logprobs is not None else None,
    )


def _finish_reason(reason: str | None, target: Target) -> FinishReason:
    if reason == "error":
        name = target.provider.name
        raise UpstreamUnavailableError(
            f"{name} stopped the answer with finish_reason 'error'.", provider=name
        )
    return _FINISH_REASONS.get(reason or "", "stop")


def _usage(usage: _Usage) -> Usage:
    return Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)


def _said(error: _ErrorBody) -> str:
    """The message, whichever of Mistral's shapes carried it (string, object, 422 detail)."""
    value = error.message if error.message is not None else error.detail
    if isinstance(value, dict) and "detail" in value:
        value = value["detail"]
    if isinstance(value, list):
        value = "; ".join(_detail(item) for item in value)
    if value is None:
        return ""
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _detail(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
    return f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", ""))


def _classify(
    status: int | None, error: _ErrorBody, headers: Mapping[str, str], target: Target
) -> UpstreamError:
    """Classify by status and Mistral's ``type``/``code`` fields, never by message text.

    Mistral's ``param`` names a field of ITS body (ids rewritten, seed renamed), so it is
    not passed on to the client.
    """
    spent = (error.type or "").startswith(_BILLING_TYPE_PREFIX)
    name = target.provider.name
    return classify_status(
        status, _said(error).strip(), headers, name, kind="quota" if spent else None
    )
