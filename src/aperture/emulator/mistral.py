"""The Mistral emulator's routes and wire format: chat completions and SSE chunk streams.

Mounted under ``/mistral`` by the emulator app, so a provider's ``base_url`` is
``<base>/mistral`` and the endpoint ``<base>/mistral/v1/chat/completions``. Errors use
Mistral's envelopes (``mistral_request``); an error after the 200 is one
``data: {"object": "error", ...}`` event, after which the stream ends without ``[DONE]``.

Answers are ``describe.py``'s sentences; usage follows Mistral's patch estimate
(``mistral_request.image_tokens``) and rides on the last chunk, as Mistral sends it. A
forced ``tool_choice`` (``any``, ``required`` or a named function) makes the emulated model
call that tool with ``{"text": <what was asked>}``, under a nine-character id.
"""

from __future__ import annotations

import asyncio
import math
import string
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from aperture.emulator.describe import (
    describe,
    describe_json,
    short_hash,
    stream_pieces,
    truncate_words,
    word_count,
)
from aperture.emulator.faults import FAULT_HEADER, FaultScript, parse_faults
from aperture.emulator.logprobs import token_logprobs
from aperture.emulator.mistral_request import (
    ChatRequest,
    MistralError,
    image_tokens,
    parse_chat_request,
)

__all__ = ["MIDSTREAM_CHUNKS", "MODELS", "routes", "tool_call_id"]

MODELS = ("mistral-medium-latest", "pixtral-large-latest", "mistral-small-text")
TOOL_CALL_TOKENS = 10
MIDSTREAM_CHUNKS = 2
_ALNUM = string.ascii_letters + string.digits
SCRIPTED: dict[int, tuple[str, str]] = {
    400: ("Emulated bad request", "invalid_request_message_error"),
    403: ("Forbidden", "forbidden"),
    404: ("Invalid model: emulator", "invalid_model"),
    422: ("Emulated unprocessable entity", "invalid_request_message_error"),
    429: ("Requests rate limit exceeded", "rate_limited"),
    500: ("Internal server error", "internal_server_error"),
    502: ("Bad gateway", "internal_server_error"),
    503: ("Service unavailable", "service_unavailable"),
    504: ("Upstream request timeout", "timeout"),
}


@dataclass(frozen=True, slots=True)
class Reply:
    content: str
    tool_call: dict[str, Any] | None
    finish_reason: str
    usage: dict[str, int]


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
    ]


async def chat_completions(request: Request) -> Response:
    body = await request.body()
    try:
        unauthorized = _unauthorized(request, body)
        if unauthorized is not None:
            return unauthorized
        faults = _read_faults(request)
        if faults.delay_ms:
            await asyncio.sleep(faults.delay_ms / 1000)
        scripted = _scripted_error(faults)
        if scripted is not None:
            raise scripted
        parsed = parse_chat_request(body)
    except MistralError as error:
        return _json(error.body(), error.status, error.headers)
    reply = build_reply(parsed)
    completion_id = short_hash(body, 32)
    created = int(time.time())
    if parsed.stream:
        chunks = stream_chunks(parsed, reply, completion_id, created, midstream=faults.midstream)
        return StreamingResponse(chunks, media_type="text/event-stream")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.content,
        "tool_calls": [reply.tool_call] if reply.tool_call is not None else None,
        "prefix": False,
    }
    choice = {
        "index": 0,
        "message": message,
        "finish_reason": reply.finish_reason,
        "logprobs": _logprobs(parsed, reply.content),
    }
    answer = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": parsed.model,
        # ``n`` choices, the same deterministic answer in each; usage counts them all.
        "choices": [{**choice, "index": i} for i in range(parsed.n)],
        "usage": _times(reply.usage, parsed.n),
    }
    return _json(answer)


def _times(usage: dict[str, int], n: int) -> dict[str, int]:
    completion = usage["completion_tokens"] * n
    return {
        **usage,
        "completion_tokens": completion,
        "total_tokens": usage["prompt_tokens"] + completion,
    }


async def list_models(request: Request) -> Response:
    unauthorized = _unauthorized(request, b"")
    if unauthorized is not None:
        return unauthorized
    data = [{"id": name, "object": "model", "owned_by": "mistralai"} for name in MODELS]
    return _json({"object": "list", "data": data})


def tool_call_id(seed: str) -> str:
    """A nine-character alphanumeric id, like the ones Mistral hands out."""
    number = int(short_hash(seed, 16), 16)
    return "".join(_ALNUM[(number >> (6 * k)) % len(_ALNUM)] for k in range(9))


def _logprobs(chat: ChatRequest, text: str | None) -> dict[str, Any] | None:
    """OpenAI's token shape with Mistral's ``token_id``, when asked."""
    if chat.top_logprobs is None:
        return None

    def token(text: str, logprob: float) -> dict[str, Any]:
        token_id = int(short_hash(text, 6), 16)
        return {
            "token": text,
            "logprob": logprob,
            "bytes": list(text.encode()),
            "token_id": token_id,
        }

    return {
        "content": [
            {**token(t.token, t.logprob), "top_logprobs": [token(s, lp) for s, lp in t.top]}
            for t in token_logprobs(text or "", chat.top_logprobs)
        ]
    }


def build_reply(chat: ChatRequest) -> Reply:
    """The deterministic answer: a forced tool call, a JSON object or the description."""
    seen = chat.seen
    prompt = math.ceil(seen.text_chars / 4) + sum(image_tokens(i, chat.model) for i in seen.images)
    if chat.tool_name is not None:
        arguments = msgspec.json.encode({"text": seen.asked}).decode()
        call = {
            "id": tool_call_id(seen.asked),
            "type": "function",
            "function": {"name": chat.tool_name, "arguments": arguments},
            "index": 0,
        }
        return Reply("", call, "tool_calls", _usage(prompt, TOOL_CALL_TOKENS))
    text = describe_json(seen) if chat.json_mode else describe(seen)
    text, cut = truncate_words(text, chat.max_tokens)
    return Reply(text, None, "length" if cut else "stop", _usage(prompt, word_count(text)))


async def stream_chunks(
    chat: ChatRequest, reply: Reply, completion_id: str, created: int, *, midstream: bool
) -> AsyncIterator[bytes]:
    """Role chunk, one chunk per word (or the whole tool call), then finish with usage."""

    def event(
        delta: dict[str, Any], finish: str | None = None, index: int = 0, **extra: Any
    ) -> bytes:
        choice = {"index": index, "delta": delta, "finish_reason": finish}
        if delta.get("content"):
            choice["logprobs"] = _logprobs(chat, delta["content"])
        chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": chat.model,
            "choices": [choice],
            **extra,
        }
        return b"data: " + msgspec.json.encode(chunk) + b"\n\n"

    for index in range(1, chat.n):  # the other choices first, whole; choice 0 ends the stream
        yield event({"role": "assistant", "content": ""}, index=index)
        for piece in stream_pieces(reply.content):
            yield event({"content": piece}, index=index)
        yield event({"content": ""}, reply.finish_reason, index=index)
    yield event({"role": "assistant", "content": ""})
    if reply.tool_call is not None:
        deltas: list[dict[str, Any]] = [{"tool_calls": [reply.tool_call]}]
    else:
        deltas = [{"content": piece} for piece in stream_pieces(reply.content)]
    for sent, delta in enumerate(deltas):
        if midstream and sent == MIDSTREAM_CHUNKS:
            error = MistralError(500, "Internal server error", type_="internal_server_error")
            yield b"data: " + msgspec.json.encode({**error.body(), "code": "1000"}) + b"\n\n"
            return
        await asyncio.sleep(0)
        yield event(delta)
    yield event({"content": ""}, reply.finish_reason, usage=_times(reply.usage, chat.n))
    yield b"data: [DONE]\n\n"


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = msgspec.json.encode(body)
    return Response(content, status_code=status, headers=headers, media_type="application/json")


def _unauthorized(request: Request, body: bytes) -> Response | None:
    # Mistral's gateway answers a missing or malformed key before the API sees the body.
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return None
    return _json({"message": "Unauthorized", "request_id": short_hash(body, 32)}, 401)


def _read_faults(request: Request) -> FaultScript:
    try:
        return parse_faults(request.headers.get(FAULT_HEADER))
    except ValueError as exc:
        raise MistralError(400, str(exc)) from None


def _scripted_error(faults: FaultScript) -> MistralError | None:
    # A spent budget is a 402 whose ``type`` names the limit (``quota``: the customer's
    # monthly spending limit; ``quota=api_budget``: the API budget), as Mistral answers it.
    if faults.quota:
        return _spent(faults.quota_variant)
    status = faults.status
    if status is None:
        return None
    message, kind = SCRIPTED.get(status, (f"Emulated failure with status {status}", "error"))
    headers = {"retry-after": "1"} if status == 429 else None
    return MistralError(status, message, type_=kind, headers=headers)


def _spent(variant: str) -> MistralError:
    if variant == "":
        return MistralError(
            402,
            "Customer monthly spending limit reached (emulator).",
            type_="billing_customer_monthly_spending_limit_reached",
            code="2300",
        )
    if variant == "api_budget":
        return MistralError(
            402, "API budget exhausted.", type_="billing_api_budget_exhausted", code="2303"
        )
    raise MistralError(400, f"{FAULT_HEADER}: unknown quota variant {variant!r}")
