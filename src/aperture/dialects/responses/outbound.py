"""Canonical answers and stream events -> the OpenAI Responses API's objects and events. Pure.

A Responses answer is a list of output items: one ``reasoning`` item per thought of the
model (its text as a ``summary_text``, its signature as ``encrypted_content``, which the
client sends back to continue; a redacted thought has no summary and its payload, marked
with ``REDACTED_PREFIX``, as ``encrypted_content``), the assistant's message (its text as an
``output_text`` part, a refusal as a ``refusal`` part) and one ``function_call`` item per tool
call. A stream is the typed event sequence the official SDKs' helpers accumulate: the
response's lifecycle (``created``, ``in_progress``, then ``completed``, ``incomplete`` or
``failed``) around each item's ``added`` / deltas / ``done``, numbered by ``sequence_number``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec

from aperture.dialects.openai.outbound import render_error, token_logprobs_out
from aperture.errors import GatewayError
from aperture.model import (
    ChatResponse,
    Delta,
    Finish,
    StreamEvent,
    Thought,
    TokenLogprob,
    Usage,
    UsageReport,
)
from aperture.model.response import FinishReason

__all__ = [
    "REDACTED_PREFIX",
    "ResponsesStreamRenderer",
    "render_error",
    "render_response",
    "response_id",
]

REDACTED_PREFIX = "redacted_thinking:"
"""Marks the ``encrypted_content`` of a redacted thought (Anthropic's ``redacted_thinking``),
so that the item sent back is one again, not a signature."""

_encode = msgspec.json.Encoder().encode

# Why a response stopped short, in the Responses vocabulary.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_id(id: str) -> str:
    """A ``resp_`` id from an upstream's or the gateway's own id."""
    for prefix in ("chatcmpl-", "msg_", "resp_", "req_"):
        if id.startswith(prefix):
            return f"resp_{id[len(prefix) :]}"
    return f"resp_{id}"


def render_response(response: ChatResponse, model: str) -> bytes:
    """The ``response`` object, naming the model the client asked for."""
    rid = response_id(response.id)
    output: list[dict[str, Any]] = []
    reason: FinishReason | None = None
    if response.choices:
        choice = response.choices[0]
        reason = choice.finish_reason
        done = "incomplete" if reason in _INCOMPLETE else "completed"
        for k, thought in enumerate(choice.reasoning or ()):
            output.append(_reasoning_item(_item_id("rs", rid, k), *_sealed(thought)))
        content: list[dict[str, Any]] = []
        if choice.content:
            content.append(_text_part(choice.content, choice.logprobs))
        if choice.refusal:
            content.append({"type": "refusal", "refusal": choice.refusal})
        if content:
            output.append(_message_item(_item_id("msg", rid, 0), content, done))
        for k, call in enumerate(choice.tool_calls or ()):
            output.append(
                _call_item(_item_id("fc", rid, k), call.id, call.name, call.arguments, "completed")
            )
    return _encode(
        _response(rid, response.created, model, _status(reason), output, response.usage, reason)
    )


def _status(reason: FinishReason | None) -> str:
    return "incomplete" if reason in _INCOMPLETE else "completed"


def _response(
    rid: str,
    created: float,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
    reason: FinishReason | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    incomplete = _INCOMPLETE.get(reason) if reason is not None else None
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "model": model,
        "output": output,
        # The request's own settings are not echoed: the canonical answer does not carry
        # them, and the SDKs read only the output and usage.
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _usage(usage) if usage is not None else None,
    }


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens or 0,
            "cache_write_tokens": usage.cache_creation_tokens or 0,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": usage.total_tokens,
    }


def _item_id(kind: str, rid: str, k: int) -> str:
    return f"{kind}_{rid.removeprefix('resp_')}_{k}"


def _text_part(text: str, logprobs: Sequence[TokenLogprob] | None = None) -> dict[str, Any]:
    return {
        "type": "output_text",
        "text": text,
        "annotations": [],
        "logprobs": _logprobs(logprobs),
    }


def _logprobs(tokens: Sequence[TokenLogprob] | None) -> list[Any]:
    """``output_text.logprobs``: Chat Completions' token objects (the SDK's ``Logprob``)."""
    if not tokens:
        return []
    return msgspec.to_builtins(token_logprobs_out(tuple(tokens)))  # type: ignore[no-any-return]  # a list of dicts


def _message_item(id: str, content: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {"id": id, "type": "message", "role": "assistant", "status": status, "content": content}


def _sealed(thought: Thought) -> tuple[str, str | None]:
    """A thought's summary text and ``encrypted_content``."""
    if thought.redacted is not None:
        return "", REDACTED_PREFIX + thought.redacted
    return thought.text, thought.signature


def _reasoning_item(id: str, text: str, signature: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}] if text else [],
        "status": "completed",
    }
    if signature:
        item["encrypted_content"] = signature
    return item


def _call_item(id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def _error_code(error: GatewayError) -> str:
    # The SDK types ``response.error.code`` as a closed set; the gateway's own code is in
    # the message's ``error`` event before it.
    if error.status_code == 429:
        return "rate_limit_exceeded"
    if "image" in error.code:
        return "invalid_image"
    return "server_error"


class _Call:
    def __init__(self, id: str, output_index: int, call_id: str, name: str) -> None:
        self.id, self.output_index, self.call_id, self.name = id, output_index, call_id, name
        self.arguments: list[str] = []


class ResponsesStreamRenderer:
    """Renders canonical stream events as the Responses API's typed SSE events."""

    def __init__(self, *, id: str, created: int, model: str, include_usage: bool) -> None:
        self._id = response_id(id)
        self._created = created or int(time.time())
        self._model = model
        self._seq = 0
        self._started = False
        self._output: list[dict[str, Any]] = []  # finished items, by output index
        # The open message item: its output index, part kind and text, if any.
        self._message: int | None = None
        self._part_kind: str | None = None
        self._part_text: list[str] = []
        self._part_logprobs: list[TokenLogprob] = []
        self._parts: list[dict[str, Any]] = []
        self._calls: dict[int, _Call] = {}
        # The open reasoning item: its output index and summary text so far.
        self._thinking: int | None = None
        self._thinking_text: list[str] = []
        self._thoughts = 0
        self._reason: FinishReason | None = None
        self._usage: Usage | None = None

    def event(self, event: StreamEvent) -> bytes:
        out = self._start()
        match event:
            case Delta(thought=thought) if thought is not None:
                out += self._thought(thought)
            case Delta(content=text) if text:
                out += self._text("output_text", text, event.logprobs)
            case Delta(refusal=text) if text:
                out += self._text("refusal", text)
            case Delta(tool_calls=calls) if calls:
                for call in calls:
                    out += self._tool_delta(call.index, call.id, call.name, call.arguments)
            case Finish(index=0, reason=reason):
                self._reason = reason
            case UsageReport(usage=usage):
                self._usage = usage
            case _:
                pass
        return b"".join(out)

    def _thought(self, thought: Thought) -> list[bytes]:
        """A reasoning item per thought: its summary text streams as one summary part; its
        signature closes it."""
        out: list[bytes] = []
        if thought.redacted is not None:
            # Whole in one event: its item opens and closes at once.
            out += self._close_thinking()
            out += self._thought(Thought())
            return out + self._close_thinking(REDACTED_PREFIX + thought.redacted)
        if self._thinking is None:
            out += self._close_message()
            out += self._close_calls()
            self._thinking = len(self._output)
            self._output.append({})
            item = {**_reasoning_item(self._thinking_id, "", None), "status": "in_progress"}
            where = {"output_index": self._thinking}
            out.append(self._sse("response.output_item.added", {**where, "item": item}))
            part = {"type": "summary_text", "text": ""}
            out.append(
                self._sse("response.reasoning_summary_part.added", {**self._summary, "part": part})
            )
        if thought.text:
            self._thinking_text.append(thought.text)
            out.append(
                self._sse(
                    "response.reasoning_summary_text.delta",
                    {**self._summary, "delta": thought.text},
                )
            )
        if thought.signature:
            out += self._close_thinking(thought.signature)
        return out

    @property
    def _thinking_id(self) -> str:
        return _item_id("rs", self._id, self._thoughts)

    @property
    def _summary(self) -> dict[str, Any]:
        return {"item_id": self._thinking_id, "output_index": self._thinking, "summary_index": 0}

    def _close_thinking(self, signature: str | None = None) -> list[bytes]:
        if self._thinking is None:
            return []
        text = "".join(self._thinking_text)
        part = {"type": "summary_text", "text": text}
        out = [
            self._sse("response.reasoning_summary_text.done", {**self._summary, "text": text}),
            self._sse("response.reasoning_summary_part.done", {**self._summary, "part": part}),
        ]
        item = _reasoning_item(self._thinking_id, text, signature)
        self._output[self._thinking] = item
        out.append(
            self._sse("response.output_item.done", {"output_index": self._thinking, "item": item})
        )
        self._thinking, self._thinking_text = None, []
        self._thoughts += 1
        return out

    def done(self) -> bytes:
        out = self._start()
        out += self._close_thinking()
        out += self._close_message()
        out += self._close_calls()
        status = _status(self._reason)
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        out.append(self._sse(kind, {"response": self._snapshot(status, self._output, self._usage)}))
        return b"".join(out)

    def error(self, error: GatewayError) -> bytes:
        """After the stream has started: an ``error`` event, then ``response.failed``."""
        out = self._start()
        out.append(
            self._sse("error", {"code": error.code, "message": error.message, "param": error.param})
        )
        failure = {"code": _error_code(error), "message": error.message}
        response = self._snapshot("failed", self._output, self._usage, failure)
        out.append(self._sse("response.failed", {"response": response}))
        return b"".join(out)

    def _snapshot(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: Usage | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        reason = self._reason if status == "incomplete" else None
        # An item still open has its place taken but nothing written yet: it is left out.
        done = [item for item in output if item]
        return _response(self._id, self._created, self._model, status, done, usage, reason, error)

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        response = self._snapshot("in_progress", [])
        return [
            self._sse("response.created", {"response": response}),
            self._sse("response.in_progress", {"response": response}),
        ]

    def _text(
        self, kind: str, text: str, logprobs: tuple[TokenLogprob, ...] | None = None
    ) -> list[bytes]:
        out = self._close_thinking()
        out += self._close_calls()
        if self._message is None:
            self._message = len(self._output)
            self._output.append({})  # the place is taken; the item is written when done
            item = _message_item(self._message_id, [], "in_progress")
            out.append(
                self._sse(
                    "response.output_item.added", {"output_index": self._message, "item": item}
                )
            )
        if self._part_kind != kind:
            out += self._close_part()
            self._part_kind = kind
            out.append(
                self._sse("response.content_part.added", {**self._where, "part": self._part("")})
            )
        self._part_text.append(text)
        if logprobs:
            self._part_logprobs.extend(logprobs)
        delta = "response.output_text.delta" if kind == "output_text" else "response.refusal.delta"
        extra: dict[str, Any] = {"logprobs": _logprobs(logprobs)} if kind == "output_text" else {}
        out.append(self._sse(delta, {**self._where, "delta": text, **extra}))
        return out

    @property
    def _message_id(self) -> str:
        return _item_id("msg", self._id, self._message or 0)

    @property
    def _where(self) -> dict[str, Any]:
        return {
            "item_id": self._message_id,
            "output_index": self._message,
            "content_index": len(self._parts),
        }

    def _part(self, text: str) -> dict[str, Any]:
        if self._part_kind == "refusal":
            return {"type": "refusal", "refusal": text}
        return _text_part(text, self._part_logprobs)

    def _close_part(self) -> list[bytes]:
        if self._part_kind is None:
            return []
        text = "".join(self._part_text)
        part = self._part(text)
        if self._part_kind == "output_text":
            done = self._sse(
                "response.output_text.done",
                {**self._where, "text": text, "logprobs": _logprobs(self._part_logprobs)},
            )
        else:
            done = self._sse("response.refusal.done", {**self._where, "refusal": text})
        out = [done, self._sse("response.content_part.done", {**self._where, "part": part})]
        self._parts.append(part)
        self._part_kind, self._part_text, self._part_logprobs = None, [], []
        return out

    def _close_message(self) -> list[bytes]:
        if self._message is None:
            return []
        out = self._close_part()
        status = "incomplete" if self._reason in _INCOMPLETE else "completed"
        item = _message_item(self._message_id, self._parts, status)
        self._output[self._message] = item
        out.append(
            self._sse("response.output_item.done", {"output_index": self._message, "item": item})
        )
        self._message, self._parts = None, []
        return out

    def _tool_delta(
        self, index: int, call_id: str | None, name: str | None, arguments: str | None
    ) -> list[bytes]:
        out: list[bytes] = []
        call = self._calls.get(index)
        if call is None:
            out += self._close_thinking()
            out += self._close_message()
            position = len(self._output)
            self._output.append({})
            call = _Call(_item_id("fc", self._id, index), position, call_id or "", name or "")
            self._calls[index] = call
            item = _call_item(call.id, call.call_id, call.name, "", "in_progress")
            out.append(
                self._sse("response.output_item.added", {"output_index": position, "item": item})
            )
        if arguments:
            call.arguments.append(arguments)
            out.append(
                self._sse(
                    "response.function_call_arguments.delta",
                    {"item_id": call.id, "output_index": call.output_index, "delta": arguments},
                )
            )
        return out

    def _close_calls(self) -> list[bytes]:
        out: list[bytes] = []
        for call in self._calls.values():
            arguments = "".join(call.arguments)
            where = {"item_id": call.id, "output_index": call.output_index}
            out.append(
                self._sse(
                    "response.function_call_arguments.done",
                    {**where, "name": call.name, "arguments": arguments},
                )
            )
            item = _call_item(call.id, call.call_id, call.name, arguments, "completed")
            self._output[call.output_index] = item
            out.append(
                self._sse(
                    "response.output_item.done", {"output_index": call.output_index, "item": item}
                )
            )
        self._calls = {}
        return out

    def _sse(self, kind: str, payload: dict[str, Any]) -> bytes:
        data = _encode({"type": kind, "sequence_number": self._seq, **payload})
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"
