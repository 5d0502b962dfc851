"""OpenAI's Responses API as an upstream wire (``wire: responses`` on a model): for models
OpenAI serves only at ``/v1/responses``. Pure.

The canonical conversation becomes ``input`` items: system and developer turns stay message
items of that role (so a conversation's later system turns keep their place), assistant tool
calls become ``function_call`` items and tool turns ``function_call_output`` items. Nothing is
kept at OpenAI (``store: false``): the gateway sends the whole conversation every time and
keeps its own (``previous_response_id`` on the client's side). Chat-only fields a client may
have sent (``extra``) have no place in this API, which refuses unknown ones, so only the few
that mean the same here go on; canonical ``reasoning`` goes as ``reasoning.effort`` (a budget as
the effort it reaches), and the answer's ``reasoning`` items come back as thoughts (their
summary, and ``encrypted_content`` as the signature). Sampling hints
it lacks (``seed``, the penalties) are left out; what would change the answer's shape (``n``
above 1, ``stop``, audio and video parts) is refused before the call. ``logprobs`` is asked
for as ``include: ["message.output_text.logprobs"]`` and read from each ``output_text``.

Errors have the same envelope as Chat Completions', so ``parse_error`` is OpenAI's.
"""

from __future__ import annotations

from typing import Any

import msgspec

from aperture.errors import UnsupportedCapabilityError, UpstreamError
from aperture.model import (
    ChatRequest,
    ChatResponse,
    Choice,
    Delta,
    File,
    Image,
    Message,
    NamedToolChoice,
    Part,
    StreamEvent,
    Target,
    Text,
    Thought,
    Tool,
    ToolCall,
    Usage,
)
from aperture.model.response import FinishReason
from aperture.providers._json_body import encode_body, verbatim
from aperture.providers._logprobs import WireToken, from_tokens
from aperture.providers._status import ErrorClass, classify_status, malformed
from aperture.providers._stream import StreamAssembler
from aperture.providers.openai import OpenAIProvider
from aperture.providers.registry import spec_for
from aperture.upstream import SseEvent, UpstreamRequest

__all__ = ["OpenAIResponsesProvider", "responses_body"]

# Chat Completions fields that mean the same on the Responses API, as they are named there.
_SAME_FIELDS = ("metadata", "service_tier", "prompt_cache_key", "safety_identifier")


class _In(msgspec.Struct, kw_only=True):
    pass


class _Part(_In, kw_only=True):
    type: str
    text: str | None = None
    refusal: str | None = None
    logprobs: list[WireToken] | None = None


class _Item(_In, kw_only=True):
    type: str
    id: str | None = None
    content: list[_Part] | None = None
    summary: list[_Part] | None = None
    encrypted_content: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None


class _InputDetails(_In, kw_only=True):
    cached_tokens: int | None = None


class _OutputDetails(_In, kw_only=True):
    reasoning_tokens: int | None = None


class _Usage(_In, kw_only=True):
    input_tokens: int = 0
    output_tokens: int = 0
    input_tokens_details: _InputDetails | None = None
    output_tokens_details: _OutputDetails | None = None


class _Incomplete(_In, kw_only=True):
    reason: str | None = None


class _Error(_In, kw_only=True):
    code: str | None = None
    message: str | None = None


class _Response(_In, kw_only=True):
    id: str = ""
    model: str = ""
    created_at: float = 0
    status: str | None = None
    output: list[_Item] = []
    usage: _Usage | None = None
    incomplete_details: _Incomplete | None = None
    error: _Error | None = None


class _Event(_In, kw_only=True):
    type: str
    delta: str | None = None
    logprobs: list[WireToken] | None = None
    item_id: str | None = None
    output_index: int = 0
    item: _Item | None = None
    response: _Response | None = None
    code: str | None = None
    message: str | None = None


_RESPONSE = msgspec.json.Decoder(_Response)
_EVENT = msgspec.json.Decoder(_Event)


class OpenAIResponsesProvider(OpenAIProvider):
    """The ``openai`` kind, for models configured with ``wire: responses``."""

    def build_request(self, request: ChatRequest, target: Target) -> UpstreamRequest:
        provider = target.provider
        headers = {"Content-Type": "application/json", **provider.headers}
        if provider.api_key:
            headers["Authorization"] = f"Bearer {provider.api_key}"
        base = (provider.base_url or spec_for(provider.kind).base_url or "").rstrip("/")
        body = encode_body(responses_body(request, target))
        return UpstreamRequest(f"{base}/responses", headers, body)

    def parse_response(self, body: bytes, target: Target) -> ChatResponse:
        try:
            response = _RESPONSE.decode(body)
        except msgspec.DecodeError as exc:
            raise malformed(target.provider.name) from exc
        if response.error is not None:
            raise _failed(response.error, target)
        content: list[str] = []
        refusal: list[str] = []
        calls: list[ToolCall] = []
        tokens: list[WireToken] = []
        thoughts: list[Thought] = []
        for item in response.output:
            if item.type == "reasoning":
                summary = "".join(p.text or "" for p in item.summary or ())
                if summary or item.encrypted_content:
                    thoughts.append(Thought(summary, item.encrypted_content))
            elif item.type == "message":
                for part in item.content or ():
                    if part.type == "output_text" and part.text:
                        content.append(part.text)
                        tokens += part.logprobs or ()
                    elif part.type == "refusal" and part.refusal:
                        refusal.append(part.refusal)
            elif item.type == "function_call":
                calls.append(ToolCall(item.call_id or "", item.name or "", item.arguments or ""))
        choice = Choice(
            index=0,
            content="".join(content) or None,
            tool_calls=tuple(calls) or None,
            refusal="".join(refusal) or None,
            finish_reason=_finish(response, bool(calls)),
            logprobs=from_tokens(tokens) if tokens else None,
            reasoning=tuple(thoughts) or None,
        )
        return ChatResponse(
            id=response.id,
            model=response.model,
            created=int(response.created_at),
            choices=(choice,),
            usage=_usage(response.usage) if response.usage is not None else None,
        )

    def stream_parser(self, target: Target) -> _StreamParser:  # type: ignore[override]  # another wire's parser
        return _StreamParser(target)


def responses_body(request: ChatRequest, target: Target) -> dict[str, Any]:
    """The Responses API request body for ``request`` (Azure's is the same).

    Raises:
        UnsupportedCapabilityError: ``n`` above 1, ``stop``, or audio or video input.
    """
    _refuse_the_unsayable(request)
    body: dict[str, Any] = {
        "model": target.upstream_model,
        "input": [item for m in request.messages for item in _items(m)],
        "store": False,
    }
    if request.max_tokens is not None:
        body["max_output_tokens"] = request.max_tokens
    for field in ("temperature", "top_p", "parallel_tool_calls", "user"):
        value = getattr(request, field)
        if value is not None:
            body[field] = value
    body.update(_tools(request))
    if request.response_format is not None and request.response_format.type != "text":
        body["text"] = {"format": _format(request)}
    if request.stream:
        body["stream"] = True
    if request.logprobs:
        body["include"] = ["message.output_text.logprobs"]
        if request.top_logprobs is not None:
            body["top_logprobs"] = request.top_logprobs
    reasoning = request.reasoning
    if reasoning is not None and (reasoning.enabled or reasoning.effort is not None):
        # A thinking budget goes as the effort it reaches (model/reasoning.py).
        body["reasoning"] = {"effort": reasoning.level}
    extra = request.extra
    for field in _SAME_FIELDS:
        if field in extra:
            body[field] = msgspec.json.decode(extra[field])
    return body


def _refuse_the_unsayable(request: ChatRequest) -> None:
    if request.n is not None and request.n > 1:
        raise UnsupportedCapabilityError(
            "The Responses API returns one answer per request; n must be 1.", param="n"
        )
    if request.stop:
        raise UnsupportedCapabilityError(
            "The Responses API has no stop sequences; leave stop out for this model.",
            param="stop",
        )


def _tools(request: ChatRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if request.tools is not None:
        out["tools"] = [_tool(t) for t in request.tools]
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        out["tool_choice"] = {"type": "function", "name": choice.name}
    elif choice is not None:
        out["tool_choice"] = choice
    return out


def _tool(tool: Tool) -> dict[str, Any]:
    described = {"description": tool.description} if tool.description is not None else {}
    return {
        "type": "function",
        "name": tool.name,
        **described,
        "parameters": tool.parameters,
        # Chat Completions' default; the Responses API would otherwise assume strict.
        "strict": bool(tool.strict),
    }


def _format(request: ChatRequest) -> dict[str, Any]:
    fmt = request.response_format
    assert fmt is not None
    if fmt.type == "json_schema" and fmt.json_schema is not None:
        return {"type": "json_schema", **fmt.json_schema}
    return {"type": "json_object"}


def _items(message: Message) -> list[dict[str, Any]]:
    role = message.role
    if role == "tool":
        return [
            {
                "type": "function_call_output",
                "call_id": message.tool_call_id or "",
                "output": _text(message),
            }
        ]
    items: list[dict[str, Any]] = []
    if role == "assistant":
        text = _text(message)
        if text:
            items.append({"type": "message", "role": "assistant", "content": text})
        items += [
            {"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments}
            for c in message.tool_calls or ()
        ]
        return items
    content = message.content
    if content is None or isinstance(content, str):
        return [{"type": "message", "role": role, "content": content or ""}]
    return [{"type": "message", "role": role, "content": [_part(p) for p in content]}]


def _text(message: Message) -> str:
    return "".join(p.text for p in message.parts() if isinstance(p, Text))


def _part(part: Part) -> dict[str, Any]:
    match part:
        case Text(text=text):
            return {"type": "input_text", "text": text}
        case Image(url=url, detail=detail, inline=inline):
            # The API requires ``detail``; "auto" is what it means when a client leaves it out.
            image_url = verbatim(url) if inline is not None else url  # checked: unscanned
            return {"type": "input_image", "image_url": image_url, "detail": detail or "auto"}
        case File(file_id=file_id, file_data=data, filename=filename, inline=inline):
            if filename is None and inline is not None:
                filename = "document.pdf"
            values = {"file_id": file_id, "file_data": data, "filename": filename}
            return {"type": "input_file", **{k: v for k, v in values.items() if v is not None}}
    raise UnsupportedCapabilityError(
        "The Responses API takes no audio or video input; send it to a model served through "
        "Chat Completions.",
        param="messages",
    )


def _finish(response: _Response, called: bool) -> FinishReason:
    if response.status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_calls" if called else "stop"


def _usage(usage: _Usage) -> Usage:
    return Usage(
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        cached_tokens=usage.input_tokens_details.cached_tokens
        if usage.input_tokens_details
        else None,
        reasoning_tokens=usage.output_tokens_details.reasoning_tokens
        if usage.output_tokens_details
        else None,
    )


def _failed(error: _Error, target: Target) -> UpstreamError:
    # A failure after the provider's 200, classified by its documented code.
    limited = error.code == "rate_limit_exceeded"
    kind: ErrorClass | None = "rate_limited" if limited else None
    return classify_status(None, error.message, {}, target.provider.name, kind=kind)


class _StreamParser:
    """The typed events of a Responses stream, as canonical deltas."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self.done = False
        self._asm = StreamAssembler()
        self._called = False

    def feed(self, event: SseEvent) -> list[StreamEvent]:
        try:
            parsed = _EVENT.decode(event.data)
        except msgspec.DecodeError as exc:
            raise malformed(self._target.provider.name) from exc
        self._event(parsed)
        return self._asm.drain()

    def _event(self, parsed: _Event) -> None:
        asm = self._asm
        match parsed.type:
            case "response.output_text.delta" if parsed.logprobs:
                asm.role()
                logprobs = from_tokens(parsed.logprobs)
                asm.delta(Delta(index=0, content=parsed.delta or None, logprobs=logprobs))
            case "response.output_text.delta":
                asm.text(parsed.delta)
            case "response.refusal.delta" if parsed.delta:
                asm.role()
                asm.delta(Delta(index=0, refusal=parsed.delta))
            case "response.output_item.added" if parsed.item is not None:
                item = parsed.item
                if item.type == "function_call":
                    self._called = True
                    asm.tool_start(item.id or parsed.output_index, item.call_id, item.name)
            case "response.function_call_arguments.delta":
                asm.tool_args(parsed.item_id or parsed.output_index, parsed.delta)
            case "response.output_item.done" if parsed.item is not None:
                if parsed.item.type == "function_call":
                    asm.tool_end(parsed.item.id or parsed.output_index)
            case "response.completed" | "response.incomplete" if parsed.response is not None:
                self._end(parsed.response)
            case "response.failed":
                failure = parsed.response.error if parsed.response else None
                raise _failed(failure or _Error(message="the response failed"), self._target)
            case "error":
                raise _failed(_Error(code=parsed.code, message=parsed.message), self._target)
            case _:
                pass

    def _end(self, response: _Response) -> None:
        self._asm.finish(_finish(response, self._called))
        if response.usage is not None:
            self._asm.usage(_usage(response.usage))
        self.done = True
