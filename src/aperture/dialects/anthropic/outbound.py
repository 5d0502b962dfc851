"""Canonical responses and stream events -> Anthropic Messages JSON and SSE. Pure."""

from __future__ import annotations

from typing import Any

import msgspec

from aperture.errors import GatewayError
from aperture.model import (
    ChatResponse,
    Delta,
    Finish,
    StreamEvent,
    Thought,
    Usage,
    UsageReport,
)

__all__ = ["AnthropicStreamRenderer", "render_error", "render_response"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder()

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# Our error types in Anthropic's vocabulary (anthropic.types.shared.ErrorType).
_ERROR_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "rate_limit_error": "rate_limit_error",
    "insufficient_quota": "billing_error",
    "api_error": "api_error",
}


def render_response(response: ChatResponse, model: str) -> bytes:
    """The ``message`` object, naming the model the client asked for."""
    choice = response.choices[0] if response.choices else None
    content: list[dict[str, Any]] = [
        _thinking_block(t) for t in (choice.reasoning if choice else None) or ()
    ]
    if choice is not None and choice.content:
        content.append({"type": "text", "text": choice.content})
    content.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": _input(call.arguments)}
        for call in (choice.tool_calls if choice else None) or ()
    )
    reason = choice.finish_reason if choice else None
    return _encode(
        {
            "id": _message_id(response.id),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": _STOP_REASONS.get(reason or "stop", "end_turn"),
            "stop_sequence": None,
            "usage": _usage(response.usage or Usage()),
        }
    )


def _thinking_block(thought: Thought) -> dict[str, Any]:
    """A thought as Anthropic's block; a thought without a signature (a provider that signs
    none) gets an empty one, as the SDK's type requires the field."""
    if thought.redacted is not None:
        return {"type": "redacted_thinking", "data": thought.redacted}
    return {"type": "thinking", "thinking": thought.text, "signature": thought.signature or ""}


def render_error(error: GatewayError) -> bytes:
    """Anthropic's envelope, plus our stable ``code``; the field path leads the message."""
    message = f"{error.param}: {error.message}" if error.param else error.message
    return _encode(
        {
            "type": "error",
            "error": {
                "type": _ERROR_TYPES.get(error.type, "api_error"),
                "message": message,
                "code": error.code,
            },
        }
    )


class AnthropicStreamRenderer:
    """Renders canonical stream events as Anthropic's named SSE event sequence.

    Content blocks open and close as text and tool calls arrive; ``message_delta`` with
    the stop reason and final usage is sent at the end, once both are known.
    """

    def __init__(self, *, id: str, created: int, model: str, include_usage: bool) -> None:
        self._id = _message_id(id)
        self._model = model
        self._started = False
        self._block: int = -1
        self._block_kind: str | None = None
        self._tool_blocks: dict[int, int] = {}
        self._stop_reason = "end_turn"
        self._usage = Usage()

    def event(self, event: StreamEvent) -> bytes:
        out = [] if self._started else self._start()
        match event:
            case Delta(thought=thought) if thought is not None:
                out += self._thought(thought)
            case Delta(content=text) if text:
                out += self._open("text", {"type": "text", "text": ""})
                out.append(
                    _sse(
                        "content_block_delta",
                        {"index": self._block, "delta": {"type": "text_delta", "text": text}},
                    )
                )
            case Delta(tool_calls=calls) if calls:
                for call in calls:
                    if call.index not in self._tool_blocks:
                        block = {
                            "type": "tool_use",
                            "id": call.id or "",
                            "name": call.name or "",
                            "input": {},
                        }
                        out += self._open(f"tool{call.index}", block, force=True)
                        self._tool_blocks[call.index] = self._block
                    if call.arguments:
                        index = self._tool_blocks[call.index]
                        out.append(
                            _sse(
                                "content_block_delta",
                                {
                                    "index": index,
                                    "delta": {
                                        "type": "input_json_delta",
                                        "partial_json": call.arguments,
                                    },
                                },
                            )
                        )
            case Finish(reason=reason):
                self._stop_reason = _STOP_REASONS.get(reason, "end_turn")
            case UsageReport(usage=usage):
                self._usage = usage
            case _:
                pass
        return b"".join(out)

    def _thought(self, thought: Thought) -> list[bytes]:
        """Thinking text streams as ``thinking_delta``s into one block, which its
        ``signature_delta`` ends; a redacted thought is a whole block of its own."""
        if thought.redacted is not None:
            block = {"type": "redacted_thinking", "data": thought.redacted}
            return [*self._open("redacted", block, force=True), *self._close()]
        out = self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        if thought.text:
            delta = {"type": "thinking_delta", "thinking": thought.text}
            out.append(_sse("content_block_delta", {"index": self._block, "delta": delta}))
        if thought.signature:
            delta = {"type": "signature_delta", "signature": thought.signature}
            out.append(_sse("content_block_delta", {"index": self._block, "delta": delta}))
            out += self._close()
        return out

    def done(self) -> bytes:
        out = [] if self._started else self._start()
        out += self._close()
        out.append(
            _sse(
                "message_delta",
                {
                    "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
                    "usage": _usage(self._usage),
                },
            )
        )
        out.append(_sse("message_stop", {}))
        return b"".join(out)

    @staticmethod
    def error(error: GatewayError) -> bytes:
        """The in-band ``error`` event after the stream has started."""
        return b"event: error\ndata: " + render_error(error) + b"\n\n"

    def _start(self) -> list[bytes]:
        self._started = True
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self._model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [_sse("message_start", {"message": message}), _sse("ping", {})]

    def _open(self, kind: str, block: dict[str, Any], *, force: bool = False) -> list[bytes]:
        if self._block_kind == kind and not force:
            return []
        out = self._close()
        self._block += 1
        self._block_kind = kind
        out.append(_sse("content_block_start", {"index": self._block, "content_block": block}))
        return out

    def _close(self) -> list[bytes]:
        if self._block_kind is None:
            return []
        self._block_kind = None
        return [_sse("content_block_stop", {"index": self._block})]


def _sse(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + _encode({"type": kind, **payload}) + b"\n\n"


def _usage(usage: Usage) -> dict[str, int]:
    """Anthropic's ``input_tokens`` counts only uncached input: cache reads and writes are
    their own fields, all three summing to the canonical ``prompt_tokens``."""
    read, write = usage.cached_tokens or 0, usage.cache_creation_tokens or 0
    out = {
        "input_tokens": max(usage.prompt_tokens - read - write, 0),
        "output_tokens": usage.completion_tokens,
    }
    if usage.cache_creation_tokens is not None or usage.cached_tokens is not None:
        out["cache_creation_input_tokens"] = write
        out["cache_read_input_tokens"] = read
    return out


def _input(arguments: str) -> Any:
    try:
        return _decode.decode(arguments) if arguments else {}
    except msgspec.DecodeError:
        # A model that emitted invalid JSON arguments: keep them rather than lose them.
        return {"_raw": arguments}


def _message_id(id: str) -> str:
    return id if id.startswith("msg_") else f"msg_{id.removeprefix('chatcmpl-')}"
