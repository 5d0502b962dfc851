"""The OpenAI emulator's routes and wire format: auth, scripted faults, completions, streams.

Mounted under ``/openai`` by the emulator app, so clients use ``<base>/openai/v1``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from aperture.emulator import openai_images, openai_responses
from aperture.emulator.describe import (
    Seen,
    describe,
    describe_json,
    prompt_tokens,
    short_hash,
    stream_pieces,
    truncate_words,
    word_count,
)
from aperture.emulator.faults import FAULT_HEADER, FaultScript, parse_faults
from aperture.emulator.logprobs import token_logprobs
from aperture.emulator.openai_errors import OpenAIError
from aperture.emulator.openai_options import REASONING_TOKENS
from aperture.emulator.openai_request import ChatRequest, parse_chat_request

__all__ = ["MODELS", "RECEIVED_HEADER", "authorized", "chat_completions", "routes"]

MODELS = ("emulator-vision", "emulator-text")
RECEIVED_HEADER = "x-emulator-received"
FINGERPRINT = "fp_emulator"
# A tool call has no words to count; a fixed cost keeps usage deterministic.
TOOL_CALL_TOKENS = 10
# After a midstream fault the client has seen this many content chunks.
MIDSTREAM_CHUNKS = 2

HARD_LIMIT = "Billing hard limit has been reached"
NOT_ACTIVE = "Your account is not active, please check your billing details on our website."
NO_API_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
    "blank username) if you're accessing the API from your browser and are prompted for a "
    "username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)
SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
MIDSTREAM_ERROR = "The server had an error while processing your request."
RATE_LIMITED = (
    "Rate limit reached in organization org-emulator on requests per min (RPM): Limit 3, "
    "Used 3, Requested 1. Please try again in 1s."
)
OUT_OF_QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Reply:
    content: str | None
    tool_call: ToolCall | None
    finish_reason: str
    usage: dict[str, object]


def routes(*, strict: bool = True) -> list[BaseRoute]:
    """OpenAI's routes; ``strict=False`` is an OpenAI-compatible server (vLLM) instead, which
    ignores request fields it does not know where OpenAI refuses them."""

    async def completions(request: Request) -> Response:
        return await chat_completions(request, strict=strict)

    return [
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/responses", authorized(openai_responses.responses), methods=["POST"]),
        Route("/v1/images/generations", authorized(openai_images.generations), methods=["POST"]),
        Route("/v1/images/edits", authorized(openai_images.edits), methods=["POST"]),
        # OpenAI answers unknown paths and wrong methods with its envelope, not a bare 404.
        Route("/{path:path}", unknown_url, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]


async def chat_completions(request: Request, *, strict: bool = True) -> Response:
    try:
        _authorize(request)
        faults = _read_faults(request)
        if faults.delay_ms:
            await asyncio.sleep(faults.delay_ms / 1000)
        scripted = _scripted_error(faults)
        if scripted is not None:
            raise scripted
        body = await request.body()
        chat = parse_chat_request(body, strict=strict)
    except OpenAIError as error:
        return error_response(error)
    replies = build_replies(chat)
    completion_id = f"chatcmpl-{short_hash(body)}"
    headers = {RECEIVED_HEADER: received_header(chat), "x-request-id": f"req_{short_hash(body)}"}
    created = int(time.time())
    if chat.stream:
        chunks = stream_chunks(chat, replies, completion_id, created, midstream=faults.midstream)
        return StreamingResponse(chunks, media_type="text/event-stream", headers=headers)
    return _json(completion_body(chat, replies, completion_id, created), headers=headers)


async def list_models(request: Request) -> Response:
    try:
        _authorize(request)
    except OpenAIError as error:
        return error_response(error)
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "emulator"} for name in MODELS
    ]
    return _json({"object": "list", "data": data})


async def unknown_url(request: Request) -> Response:
    path = "/" + str(request.path_params.get("path", ""))
    return error_response(OpenAIError(404, f"Invalid URL ({request.method} {path})"))


def build_reply(chat: ChatRequest, choice: int = 0) -> Reply:
    """The deterministic answer: a forced tool call, a JSON object or the description.

    With ``n`` choices, choice ``i`` > 0 ends its text with ``(choice i)``."""
    seen = chat.seen
    reasoning = REASONING_TOKENS.get(chat.reasoning_effort or "none", 0)
    if chat.tool_name is not None:
        arguments = msgspec.json.encode({"text": seen.asked}).decode()
        call = ToolCall(f"call_{short_hash(seen.asked)}", chat.tool_name, arguments)
        return Reply(None, call, "tool_calls", _usage(seen, TOOL_CALL_TOKENS, reasoning))
    text = describe_json(seen) if chat.json_mode else describe(seen)
    if choice and not chat.json_mode:
        text = f"{text} (choice {choice})"
    text, cut = truncate_words(text, chat.max_words)
    usage = _usage(seen, word_count(text), reasoning)
    return Reply(text, None, "length" if cut else "stop", usage)


def build_replies(chat: ChatRequest) -> list[Reply]:
    """One reply per requested choice (``n``); the usage counts every choice's tokens."""
    replies = [build_reply(chat, i) for i in range(chat.sampling.n)]
    if len(replies) == 1:
        return replies
    completion = sum(int(str(r.usage["completion_tokens"])) for r in replies)
    prompt = int(str(replies[0].usage["prompt_tokens"]))
    usage = {
        **replies[0].usage,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return [Reply(r.content, r.tool_call, r.finish_reason, usage) for r in replies]


def logprobs_json(chat: ChatRequest, text: str | None) -> dict[str, object] | None:
    """A choice's ``logprobs`` object when asked (``null`` otherwise, as OpenAI sends)."""
    if not chat.sampling.logprobs:
        return None
    content = [
        {
            "token": t.token,
            "logprob": t.logprob,
            "bytes": list(t.token.encode()),
            "top_logprobs": [
                {"token": token, "logprob": logprob, "bytes": list(token.encode())}
                for token, logprob in t.top
            ],
        }
        for t in token_logprobs(text or "", chat.sampling.top_logprobs)
    ]
    return {"content": content, "refusal": None}


def completion_body(
    chat: ChatRequest, replies: list[Reply], completion_id: str, created: int
) -> dict[str, object]:
    choices = []
    for index, reply in enumerate(replies):
        message: dict[str, object] = {
            "role": "assistant",
            "content": reply.content,
            "refusal": None,
        }
        if reply.tool_call is not None:
            message["tool_calls"] = [_tool_call_json(reply.tool_call, index=None)]
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": logprobs_json(chat, reply.content),
                "finish_reason": reply.finish_reason,
            }
        )
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": chat.model,
        "choices": choices,
        "usage": replies[0].usage,
        "system_fingerprint": FINGERPRINT,
    }


async def stream_chunks(
    chat: ChatRequest, replies: list[Reply], completion_id: str, created: int, *, midstream: bool
) -> AsyncIterator[bytes]:
    """SSE events in OpenAI's order: for each choice its role, one delta per word and its
    finish; then usage and ``[DONE]``. A word's delta carries its logprobs when asked."""

    def event(choices: list[dict[str, object]], usage: dict[str, object] | None = None) -> bytes:
        chunk: dict[str, object] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": chat.model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        }
        if chat.include_usage:
            chunk["usage"] = usage
        return b"data: " + msgspec.json.encode(chunk) + b"\n\n"

    def delta(index: int, body: dict[str, object], finish: str | None = None) -> bytes:
        content = body.get("content")
        logprobs = logprobs_json(chat, content) if isinstance(content, str) and content else None
        return event(
            [{"index": index, "delta": body, "logprobs": logprobs, "finish_reason": finish}]
        )

    sent = 0
    for index, reply in enumerate(replies):
        first, rest = _deltas(reply)
        yield delta(index, first)
        for body in rest:
            if midstream and sent == MIDSTREAM_CHUNKS:
                error = {
                    "message": MIDSTREAM_ERROR,
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
                yield b"data: " + msgspec.json.encode({"error": error}) + b"\n\n"
                return
            sent += 1
            await asyncio.sleep(0)
            yield delta(index, body)
        await asyncio.sleep(0)
        yield delta(index, {}, reply.finish_reason)
    if chat.include_usage:
        await asyncio.sleep(0)
        yield event([], replies[0].usage)
    yield b"data: [DONE]\n\n"


def _deltas(reply: Reply) -> tuple[dict[str, object], list[dict[str, object]]]:
    call = reply.tool_call
    if call is None:
        pieces = stream_pieces(reply.content or "")
        return {"role": "assistant", "content": ""}, [{"content": piece} for piece in pieces]
    head = _tool_call_json(ToolCall(call.id, call.name, ""), index=0)
    first: dict[str, object] = {"role": "assistant", "content": None, "tool_calls": [head]}
    rest: list[dict[str, object]] = [
        {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        for piece in stream_pieces(call.arguments)
    ]
    return first, rest


def _tool_call_json(call: ToolCall, *, index: int | None) -> dict[str, object]:
    body: dict[str, object] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
    return body if index is None else {"index": index, **body}


def _usage(seen: Seen, completion: int, reasoning: int = 0) -> dict[str, object]:
    prompt = prompt_tokens(seen)
    image_tokens = sum(image.tokens() for image in seen.images)
    usage: dict[str, object] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion + reasoning,
        "total_tokens": prompt + completion + reasoning,
        "prompt_tokens_details": {"cached_tokens": 0, "image_tokens": image_tokens},
    }
    if reasoning:
        # Reasoning models think in tokens the answer does not show, counted in completion.
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def received_header(chat: ChatRequest) -> str:
    images = chat.seen.images
    received = {
        "images": len(images),
        "mimes": [image.mime or "url" for image in images],
        "sizes": [
            "unknown" if image.is_url else f"{image.width}x{image.height}" for image in images
        ],
        "extra_fields": list(chat.extra_fields),
    }
    # Header values must be ASCII; stdlib json escapes what msgspec would emit raw.
    return json.dumps(received, separators=(",", ":"))


def error_response(error: OpenAIError) -> Response:
    return _json(error.body(), status=error.status, headers=error.headers)


def _json(body: object, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def authorized(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def checked(request: Request) -> Response:
        try:
            _authorize(request)
            faults = _read_faults(request)
            scripted = _scripted_error(faults)
            if scripted is not None:
                raise scripted
        except OpenAIError as error:
            return error_response(error)
        return await endpoint(request)

    return checked


def _authorize(request: Request) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise OpenAIError(401, NO_API_KEY, code="invalid_api_key")


def _read_faults(request: Request) -> FaultScript:
    try:
        return parse_faults(request.headers.get(FAULT_HEADER))
    except ValueError as exc:
        raise OpenAIError(400, str(exc), param=FAULT_HEADER) from None


def _scripted_error(faults: FaultScript) -> OpenAIError | None:
    """``quota``: the 429 ``insufficient_quota``; ``quota=billing_hard_limit``: the 400
    ``billing_hard_limit_reached``; ``quota=billing_not_active``: the 429 of that code."""
    if faults.quota:
        return _spent(faults.quota_variant)
    status = faults.status
    if status is None:
        return None
    if status == 429:
        return OpenAIError(
            429,
            RATE_LIMITED,
            type_="requests",
            code="rate_limit_exceeded",
            headers={"retry-after": "1"},
        )
    if status >= 500:
        return OpenAIError(status, SERVER_ERROR, type_="server_error")
    return OpenAIError(status, f"Emulated failure with status {status} ({FAULT_HEADER}).")


def _spent(variant: str) -> OpenAIError:
    if variant == "":
        return OpenAIError(429, OUT_OF_QUOTA, type_="insufficient_quota", code="insufficient_quota")
    if variant == "billing_hard_limit":
        return OpenAIError(400, HARD_LIMIT, code="billing_hard_limit_reached")
    if variant == "billing_not_active":
        return OpenAIError(429, NOT_ACTIVE, type_="billing_not_active", code="billing_not_active")
    raise OpenAIError(400, f"Unknown quota variant {variant!r}.", param=FAULT_HEADER)
