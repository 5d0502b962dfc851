"""The Anthropic emulator's routes and wire format: auth, scripted faults, messages, streams.

Mounted under ``/anthropic`` by the emulator app, so clients use ``<base>/anthropic`` as the
SDK's ``base_url`` and the Messages endpoint is ``<base>/anthropic/v1/messages``.

Answers are the same sentences as the OpenAI emulator's (``describe.py``): Anthropic has no
``detail``, so every image reads ``detail=auto``. Image tokens follow Anthropic's patch
formula (``anthropic_request.image_tokens``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from aperture.emulator.anthropic_errors import AnthropicError, invalid
from aperture.emulator.anthropic_request import MessagesRequest, parse_messages_request
from aperture.emulator.anthropic_thinking import redacted_data, signature_for, thought_text
from aperture.emulator.describe import (
    describe,
    describe_json,
    short_hash,
    stream_pieces,
    truncate_words,
    word_count,
)
from aperture.emulator.faults import FAULT_HEADER, FaultScript, parse_faults

__all__ = [
    "API_VERSION",
    "MIDSTREAM_DELTAS",
    "MODELS",
    "RECEIVED_HEADER",
    "TOOL_USE_TOKENS",
    "build_reply",
    "routes",
]

MODELS = ("emulator-vision", "emulator-text")
RECEIVED_HEADER = "x-emulator-received"
API_VERSION = re.compile(r"20\d\d-[01]\d-[0-3]\d")
# A tool call has no words to count; a fixed cost keeps usage deterministic.
TOOL_USE_TOKENS = 10
# After a midstream fault the client has seen this many content_block_delta events.
MIDSTREAM_DELTAS = 2

NO_API_KEY = "x-api-key header is required"
NO_VERSION = "anthropic-version: header is required"
RATE_LIMITED = (
    "This request would exceed the rate limit for your organization (emulator) of 3 requests "
    "per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can "
    "see the response headers for current usage."
)
OUT_OF_CREDIT = (
    "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing "
    "to upgrade or purchase credits."
)
# The organisation's monthly spend cap for its tier: a 429 told from a rate limit only by
# ``error.details.error_code``, and sent without ``retry-after``.
SPEND_LIMITED = (
    "You have reached your API usage limits: your organization has crossed its monthly API "
    "usage threshold (emulator)."
)
SCRIPTED: dict[int, str] = {
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "Not Found",
    413: "Request exceeds the maximum allowed number of bytes.",
    500: "Internal server error",
    504: "Request timed out",
    529: "Overloaded",
}


@dataclass(frozen=True, slots=True)
class ToolUse:
    id: str
    name: str
    input: dict[str, object]


@dataclass(frozen=True, slots=True)
class Reply:
    text: str | None
    tool_use: ToolUse | None
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int
    thinking: dict[str, object] | None = None
    """The ``thinking`` (or ``redacted_thinking``) block opening the answer, when asked."""

    def content(self) -> list[dict[str, object]]:
        """The content blocks; an answer cut to nothing (``max_tokens: 0``) has none."""
        blocks = [self.thinking] if self.thinking is not None else []
        if self.tool_use is not None:
            use = self.tool_use
            blocks.append({"type": "tool_use", "id": use.id, "name": use.name, "input": use.input})
        elif self.text:
            blocks.append({"type": "text", "text": self.text})
        return blocks


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        # Anthropic answers unknown paths and wrong methods with its envelope, not a bare 404.
        Route("/{path:path}", unknown_url, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]


async def messages(request: Request) -> Response:
    body = await request.body()
    request_id = f"req_{short_hash(body)}"
    try:
        _authorize(request)
        faults = _read_faults(request)
        if faults.delay_ms:
            await asyncio.sleep(faults.delay_ms / 1000)
        scripted = _scripted_error(faults)
        if scripted is not None:
            raise scripted
        parsed = parse_messages_request(body)
    except AnthropicError as error:
        return error_response(error, request_id)
    reply = build_reply(parsed)
    message_id = f"msg_{short_hash(body)}"
    headers = {RECEIVED_HEADER: received_header(parsed), "request-id": request_id}
    if parsed.stream:
        events = stream_events(parsed, reply, message_id, midstream=faults.midstream)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    return _json(message_body(parsed, reply, message_id), headers=headers)


async def count_tokens(request: Request) -> Response:
    """``{"input_tokens": N}``: the same count a Messages request with this body would use,
    cached or not."""
    body = await request.body()
    request_id = f"req_{short_hash(body)}"
    try:
        _authorize(request)
        parsed = parse_messages_request(body, counting=True)
    except AnthropicError as error:
        return error_response(error, request_id)
    return _json({"input_tokens": parsed.prompt_tokens}, headers={"request-id": request_id})


async def list_models(request: Request) -> Response:
    try:
        _authorize(request)
    except AnthropicError as error:
        return error_response(error, "req_models")
    data = [
        {
            "type": "model",
            "id": name,
            "display_name": name,
            "created_at": "2025-01-01T00:00:00Z",
        }
        for name in MODELS
    ]
    return _json({"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]})


async def unknown_url(request: Request) -> Response:
    return error_response(AnthropicError(404, "Not Found"), "req_not_found")


def build_reply(parsed: MessagesRequest) -> Reply:
    """The deterministic answer: a forced tool call, or the (JSON) description.

    Stop sequences cut the description at the first one it contains; ``max_tokens`` then
    cuts it to that many words.
    """
    reply = _answer(parsed)
    if parsed.thinking is None:
        return reply
    asked = parsed.seen.asked
    if parsed.redacted:
        block: dict[str, object] = {"type": "redacted_thinking", "data": redacted_data(asked)}
        tokens = TOOL_USE_TOKENS
    else:
        text = thought_text(asked)
        tokens = word_count(text)  # thought, and paid for, even when not shown
        text = text if parsed.thinking.shown else ""
        block = {"type": "thinking", "thinking": text, "signature": signature_for(text)}
    return dataclasses.replace(reply, thinking=block, output_tokens=reply.output_tokens + tokens)


def _answer(parsed: MessagesRequest) -> Reply:
    seen = parsed.seen
    if parsed.tool_name is not None:
        use = ToolUse(f"toolu_{short_hash(seen.asked)}", parsed.tool_name, {"text": seen.asked})
        return Reply(None, use, "tool_use", None, TOOL_USE_TOKENS)
    text = describe_json(seen) if parsed.json_mode else describe(seen)
    stop_reason, stop_sequence = "end_turn", None
    hits = [(text.find(s), s) for s in parsed.stop_sequences if s and s in text]
    if hits:
        at, stop_sequence = min(hits)
        text, stop_reason = text[:at], "stop_sequence"
    text, cut = truncate_words(text, parsed.max_tokens)
    if cut:
        stop_reason, stop_sequence = "max_tokens", None
    return Reply(text, None, stop_reason, stop_sequence, word_count(text))


def message_body(parsed: MessagesRequest, reply: Reply, message_id: str) -> dict[str, object]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": parsed.model,
        "content": reply.content(),
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": _usage(parsed, reply.output_tokens),
    }


async def stream_events(
    parsed: MessagesRequest, reply: Reply, message_id: str, *, midstream: bool
) -> AsyncIterator[bytes]:
    """Anthropic's event order: message_start, the block (start, ping, deltas, stop),
    message_delta with the stop reason and cumulative usage, message_stop."""
    start: dict[str, object] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": parsed.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(parsed, 1),
    }
    yield _event("message_start", {"type": "message_start", "message": start})
    blocks = _blocks(reply)
    sent = 0
    for index, (block, deltas) in enumerate(blocks):
        yield _event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
        if index == 0:
            yield _event("ping", {"type": "ping"})
        for delta in deltas:
            if midstream and sent == MIDSTREAM_DELTAS:
                error = AnthropicError(529, SCRIPTED[529])
                yield _event("error", {"type": "error", "error": error.error()})
                return
            sent += 1
            await asyncio.sleep(0)
            yield _event(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield _event("content_block_stop", {"type": "content_block_stop", "index": index})
    if not blocks:
        yield _event("ping", {"type": "ping"})
    elif midstream:
        error = AnthropicError(529, SCRIPTED[529])
        yield _event("error", {"type": "error", "error": error.error()})
        return
    await asyncio.sleep(0)
    yield _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
            "usage": {"output_tokens": reply.output_tokens},
        },
    )
    yield _event("message_stop", {"type": "message_stop"})


Block = tuple[dict[str, object], list[dict[str, object]]]


def _blocks(reply: Reply) -> list[Block]:
    """Each content block's ``content_block_start`` body and its deltas, in order."""
    blocks: list[Block] = []
    thinking = reply.thinking
    if thinking is not None and thinking["type"] == "redacted_thinking":
        blocks.append((thinking, []))  # a redacted thought arrives whole in its start
    elif thinking is not None:
        pieces = stream_pieces(str(thinking["thinking"]))
        deltas: list[dict[str, object]] = [
            {"type": "thinking_delta", "thinking": piece} for piece in pieces
        ]
        deltas.append({"type": "signature_delta", "signature": thinking["signature"]})
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
    use = reply.tool_use
    if use is not None:
        start: dict[str, object] = {"type": "tool_use", "id": use.id, "name": use.name, "input": {}}
        arguments = msgspec.json.encode(use.input).decode()
        # Anthropic opens every tool input with an empty piece, then streams the JSON.
        pieces = ["", *stream_pieces(arguments)]
        blocks.append((start, [{"type": "input_json_delta", "partial_json": p} for p in pieces]))
    elif reply.text:
        pieces = stream_pieces(reply.text)
        blocks.append(
            ({"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in pieces])
        )
    return blocks


def _event(name: str, data: dict[str, object]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"


def _usage(parsed: MessagesRequest, output_tokens: int) -> dict[str, object]:
    return {
        "input_tokens": parsed.input_tokens,
        "cache_creation_input_tokens": parsed.cache_write,
        "cache_read_input_tokens": parsed.cache_read,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def received_header(parsed: MessagesRequest) -> str:
    """What the emulator received, in the OpenAI emulator's shape; Anthropic refuses unknown
    fields, so ``extra_fields`` is always empty."""
    images = parsed.seen.images
    received = {
        "images": len(images),
        "mimes": [image.mime or "url" for image in images],
        "sizes": [
            "unknown" if image.is_url else f"{image.width}x{image.height}" for image in images
        ],
        "extra_fields": [],
    }
    # Header values must be ASCII; stdlib json escapes what msgspec would emit raw.
    return json.dumps(received, separators=(",", ":"))


def error_response(error: AnthropicError, request_id: str) -> Response:
    headers = {**error.headers, "request-id": request_id}
    return _json(error.body(request_id), status=error.status, headers=headers)


def _json(body: object, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _authorize(request: Request) -> None:
    """A key (any non-empty one) and a dated API version, as Anthropic requires.

    The key comes as ``x-api-key`` (the documented header, what gateways send) or as
    ``Authorization: Bearer`` (what anthropic-python 2.x sends for ``api_key``). The version
    must look like a date: SDKs pin newer dates than the documented ``2023-06-01``.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    bearer = scheme.lower() == "bearer" and token.strip()
    if not request.headers.get("x-api-key", "").strip() and not bearer:
        raise AnthropicError(401, NO_API_KEY)
    version = request.headers.get("anthropic-version", "").strip()
    if not version:
        raise AnthropicError(400, NO_VERSION)
    if not API_VERSION.fullmatch(version):
        raise invalid(f"anthropic-version: invalid version {version!r}")


def _read_faults(request: Request) -> FaultScript:
    try:
        return parse_faults(request.headers.get(FAULT_HEADER))
    except ValueError as exc:
        raise invalid(str(exc)) from None


def _scripted_error(faults: FaultScript) -> AnthropicError | None:
    """``quota``: 402 ``billing_error``; ``quota=spend_limit``: the 429 spend cap;
    ``quota=credit_balance``: the 400 ``invalid_request_error`` Anthropic really sends for a
    spent balance, whose only signal is its message."""
    if faults.quota:
        return _spent(faults.quota_variant)
    status = faults.status
    if status is None:
        return None
    if status == 429:
        return AnthropicError(429, RATE_LIMITED, headers={"retry-after": "1"})
    message = SCRIPTED.get(status, f"Emulated failure with status {status} ({FAULT_HEADER}).")
    return AnthropicError(status, message)


def _spent(variant: str) -> AnthropicError:
    if variant == "":
        return AnthropicError(402, OUT_OF_CREDIT)
    if variant == "spend_limit":
        details = {"error_code": "enforced_spend_limit_reached"}
        return AnthropicError(429, SPEND_LIMITED, type_="rate_limit_error", details=details)
    if variant == "credit_balance":
        return AnthropicError(400, OUT_OF_CREDIT)
    raise invalid(f"{FAULT_HEADER}: unknown quota variant {variant!r}")
