"""The Ollama emulator's routes and wire format: ``/api/chat`` answers and NDJSON streams.

Mounted under ``/ollama`` by the emulator app, so a provider's ``base_url`` is
``<base>/ollama`` and the chat endpoint ``<base>/ollama/api/chat``. Like Ollama it needs no
key, streams unless ``"stream": false``, and reports errors as ``{"error": "..."}`` (inside
a 200 stream too, as one NDJSON line).

Answers are ``describe.py``'s sentences; Ollama has no ``detail``, so every image reads
``detail=auto``. Ollama has no ``tool_choice`` either: when tools are offered and the user
spoke last, the emulated model calls the first tool with ``{"text": <what was asked>}``.
"""

from __future__ import annotations

import asyncio
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
    prompt_tokens,
    stream_pieces,
    truncate_words,
    word_count,
)
from aperture.emulator.faults import FAULT_HEADER, FaultScript, parse_faults
from aperture.emulator.logprobs import token_logprobs
from aperture.emulator.ollama_request import ChatRequest, OllamaError, parse_chat_request

__all__ = ["MIDSTREAM_ERROR", "MIDSTREAM_LINES", "MODELS", "TOOL_CALL_TOKENS", "routes"]

MODELS = ("emulator-vision", "emulator-text")
TOOL_CALL_TOKENS = 10
# After a midstream fault the client has seen this many content lines.
MIDSTREAM_LINES = 2
MIDSTREAM_ERROR = "an error was encountered while running the model: unexpected EOF"
# Ollama's durations are nanoseconds; fixed values keep answers deterministic.
_DURATIONS = {
    "total_duration": 1_200_000_000,
    "load_duration": 20_000_000,
    "prompt_eval_duration": 300_000_000,
    "eval_duration": 800_000_000,
}
USAGE_LIMIT = (
    "you (emulator) have reached your weekly usage limit, upgrade for higher limits: "
    "https://ollama.com/upgrade"
)
SCRIPTED: dict[int, str] = {
    400: "invalid request (emulated)",
    401: "unauthorized",
    402: "you have reached your usage limit, upgrade for higher limits",
    403: "forbidden",
    404: 'model "emulator-vision" not found, try pulling it first',
    429: "too many concurrent requests, please try again later",
    500: "llama runner process has terminated: exit status 2",
    502: "bad gateway",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


@dataclass(frozen=True, slots=True)
class Reply:
    content: str
    tool_call: dict[str, Any] | None
    done_reason: str
    prompt_tokens: int
    completion_tokens: int


def routes() -> list[BaseRoute]:
    return [
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/tags", tags, methods=["GET"]),
        Route("/api/version", version, methods=["GET"]),
    ]


async def chat(request: Request) -> Response:
    try:
        faults = _read_faults(request)
        if faults.delay_ms:
            await asyncio.sleep(faults.delay_ms / 1000)
        scripted = _scripted_error(faults)
        if scripted is not None:
            raise scripted
        parsed = parse_chat_request(await request.body())
    except OllamaError as error:
        return error_response(error)
    reply = build_reply(parsed)
    created_at = _now()
    if parsed.stream:
        lines = stream_lines(parsed, reply, created_at, midstream=faults.midstream)
        return StreamingResponse(lines, media_type="application/x-ndjson")
    body = {
        "model": parsed.model,
        "created_at": created_at,
        "message": _message(reply.content, reply.tool_call),
        **_final(reply),
        **_logprobs(parsed, reply.content),
    }
    return _json(body)


def _logprobs(chat: ChatRequest, text: str) -> dict[str, Any]:
    """``logprobs``: the tokens of ``text`` as a bare list, when asked; nothing otherwise."""
    if chat.top_logprobs is None or not text:
        return {}
    tokens = [
        {
            "token": t.token,
            "logprob": t.logprob,
            "bytes": list(t.token.encode()),
            "top_logprobs": [
                {"token": s, "logprob": lp, "bytes": list(s.encode())} for s, lp in t.top
            ],
        }
        for t in token_logprobs(text, chat.top_logprobs)
    ]
    return {"logprobs": tokens}


async def tags(request: Request) -> Response:
    models = [
        {"name": f"{name}:latest", "model": f"{name}:latest", "size": 0, "digest": "0" * 64}
        for name in MODELS
    ]
    return _json({"models": models})


async def version(request: Request) -> Response:
    return _json({"version": "0.12.0-emulator"})


def build_reply(chat: ChatRequest) -> Reply:
    """The deterministic answer: a tool call, a JSON object or the description."""
    seen = chat.seen
    prompt = prompt_tokens(seen)
    if chat.tool_name is not None:
        call = {"function": {"name": chat.tool_name, "arguments": {"text": seen.asked}}}
        return Reply("", call, "stop", prompt, TOOL_CALL_TOKENS)
    text = describe_json(seen) if chat.json_mode else describe(seen)
    text, cut = truncate_words(text, chat.max_words)
    return Reply(text, None, "length" if cut else "stop", prompt, word_count(text))


async def stream_lines(
    chat: ChatRequest, reply: Reply, created_at: str, *, midstream: bool
) -> AsyncIterator[bytes]:
    """One object per word, the tool call whole, then the ``done: true`` object with counts."""

    def line(body: dict[str, Any]) -> bytes:
        head = {"model": chat.model, "created_at": created_at}
        return msgspec.json.encode({**head, **body}) + b"\n"

    pieces = [] if reply.tool_call is not None else stream_pieces(reply.content)
    for sent, piece in enumerate(pieces):
        if midstream and sent == MIDSTREAM_LINES:
            break
        await asyncio.sleep(0)
        yield line({"message": _message(piece, None), "done": False, **_logprobs(chat, piece)})
    if reply.tool_call is not None and not midstream:
        yield line({"message": _message("", reply.tool_call), "done": False})
    if midstream:
        yield msgspec.json.encode({"error": MIDSTREAM_ERROR}) + b"\n"
        return
    await asyncio.sleep(0)
    yield line({"message": _message("", None), **_final(reply)})


def _message(content: str, tool_call: dict[str, Any] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_call is not None:
        message["tool_calls"] = [tool_call]
    return message


def _final(reply: Reply) -> dict[str, Any]:
    return {
        "done_reason": reply.done_reason,
        "done": True,
        "total_duration": _DURATIONS["total_duration"],
        "load_duration": _DURATIONS["load_duration"],
        "prompt_eval_count": reply.prompt_tokens,
        "prompt_eval_duration": _DURATIONS["prompt_eval_duration"],
        "eval_count": reply.completion_tokens,
        "eval_duration": _DURATIONS["eval_duration"],
    }


def error_response(error: OllamaError) -> Response:
    return _json({"error": error.message}, status=error.status, headers=error.headers)


def _json(body: object, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


def _read_faults(request: Request) -> FaultScript:
    try:
        return parse_faults(request.headers.get(FAULT_HEADER))
    except ValueError as exc:
        raise OllamaError(400, str(exc)) from None


def _scripted_error(faults: FaultScript) -> OllamaError | None:
    # A local Ollama has no quota. Ollama Cloud answers a spent plan (session or weekly
    # usage limit) with a 429 whose only signal is its message (``quota=usage_limit``), so a
    # gateway can only take it for a rate limit; the bare ``quota`` is the 402 Payment
    # Required that means a spent quota to every adapter.
    if faults.quota:
        if faults.quota_variant == "usage_limit":
            return OllamaError(429, USAGE_LIMIT)
        if faults.quota_variant:
            raise OllamaError(400, f"{FAULT_HEADER}: unknown quota variant")
        return OllamaError(402, SCRIPTED[402])
    status = faults.status
    if status is None:
        return None
    headers = {"retry-after": "1"} if status == 429 else None
    message = SCRIPTED.get(status, f"emulated failure with status {status} ({FAULT_HEADER})")
    return OllamaError(status, message, headers)
