"""The Bedrock emulator's routes and wire format: auth, scripted faults, Converse, ConverseStream.

Mounted under ``/bedrock`` by the emulator app, so a gateway provider uses
``base_url: <base>/bedrock`` and Converse is ``<base>/bedrock/model/{modelId}/converse``.

Answers are the same sentences as the other emulators' (``describe.py``): Converse has no
``detail``, so every image reads ``detail=auto``. Image tokens follow Claude's patch formula
(Bedrock serves the same models). Streams are real ``application/vnd.amazon.eventstream``
frames, CRCs included, with the ``p`` padding field Bedrock adds to event payloads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from aperture.emulator.anthropic_thinking import signature_for, thought_text
from aperture.emulator.bedrock_errors import BedrockError, check_authorization, validation
from aperture.emulator.bedrock_request import ConverseRequest, parse_converse_request
from aperture.emulator.describe import (
    describe,
    describe_json,
    short_hash,
    stream_pieces,
    truncate_words,
    word_count,
)
from aperture.emulator.faults import FAULT_HEADER, FaultScript, parse_faults
from aperture.upstream.eventstream import encode_frame

__all__ = [
    "EVENT_STREAM",
    "LATENCY_MS",
    "MIDSTREAM_DELTAS",
    "RECEIVED_HEADER",
    "TOOL_USE_TOKENS",
    "build_reply",
    "routes",
]

EVENT_STREAM = "application/vnd.amazon.eventstream"
RECEIVED_HEADER = "x-emulator-received"
# A tool call has no words to count; a fixed cost keeps usage deterministic.
TOOL_USE_TOKENS = 10
# After a midstream fault the client has seen this many contentBlockDelta events.
MIDSTREAM_DELTAS = 2
LATENCY_MS = 42
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

THROTTLED = "Too many requests, please wait before trying again."
OUT_OF_QUOTA = (
    "You have exceeded the service quota for tokens per day for this model (emulator). "
    "Request a quota increase or try again tomorrow."
)
SCRIPTED: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "Emulated validation failure (x-emulator-fault)."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified ID."),
    404: (
        "ResourceNotFoundException",
        "Could not resolve the foundation model from the provided model identifier.",
    ),
    408: ("ModelTimeoutException", "Model has timed out in processing the request."),
    424: ("ModelErrorException", "The model failed to process the request."),
    429: ("ThrottlingException", THROTTLED),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}
# In a stream, Bedrock reports failures with these frames' ``:exception-type``.
STREAM_EXCEPTIONS: dict[int, str] = {
    400: "validationException",
    429: "throttlingException",
    500: "internalServerException",
    503: "serviceUnavailableException",
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
    output_tokens: int
    thought: str | None = None
    """Claude's thinking, when asked: a ``reasoningContent`` block first, signed."""

    def reasoning(self) -> list[dict[str, object]]:
        if self.thought is None:
            return []
        text = {"text": self.thought, "signature": signature_for(self.thought)}
        return [{"reasoningContent": {"reasoningText": text}}]

    def content(self) -> list[dict[str, object]]:
        if self.tool_use is not None:
            use = self.tool_use
            call: dict[str, object] = {
                "toolUse": {"toolUseId": use.id, "name": use.name, "input": use.input}
            }
            return [*self.reasoning(), call]
        text: list[dict[str, object]] = [{"text": self.text}] if self.text else []
        return [*self.reasoning(), *text]


def routes() -> list[BaseRoute]:
    return [
        Route("/model/{model_id:path}/converse", converse, methods=["POST"]),
        Route("/model/{model_id:path}/converse-stream", converse_stream, methods=["POST"]),
    ]


async def converse(request: Request) -> Response:
    return await _handle(request, stream=False)


async def converse_stream(request: Request) -> Response:
    return await _handle(request, stream=True)


async def _handle(request: Request, *, stream: bool) -> Response:
    body = await request.body()
    request_id = _uuid(body)
    try:
        scope = request.scope
        check_authorization(
            request.method, scope["raw_path"], scope["query_string"], request.headers, body
        )
        faults = _read_faults(request)
        if faults.delay_ms:
            await asyncio.sleep(faults.delay_ms / 1000)
        scripted = _scripted_error(faults, stream=stream)
        if scripted is not None:
            raise scripted
        parsed = parse_converse_request(request.path_params["model_id"], body, stream=stream)
    except BedrockError as error:
        return error_response(error, request_id)
    reply = build_reply(parsed)
    headers = {RECEIVED_HEADER: received_header(parsed), "x-amzn-requestid": request_id}
    if stream:
        frames = stream_frames(parsed, reply, faults)
        return StreamingResponse(frames, media_type=EVENT_STREAM, headers=headers)
    return _json(converse_body(parsed, reply), headers=headers)


def build_reply(parsed: ConverseRequest) -> Reply:
    """The deterministic answer: a forced tool call, or the (JSON) description.

    Stop sequences cut the description at the first one it contains; ``maxTokens`` then
    cuts it to that many words.
    """
    reply = _answer(parsed)
    if not parsed.thinking:
        return reply
    thought = thought_text(parsed.seen.asked)
    tokens = reply.output_tokens + word_count(thought)
    return dataclasses.replace(reply, thought=thought, output_tokens=tokens)


def _answer(parsed: ConverseRequest) -> Reply:
    seen = parsed.seen
    if parsed.tool_name is not None:
        use = ToolUse(f"tooluse_{short_hash(seen.asked)}", parsed.tool_name, {"text": seen.asked})
        return Reply(None, use, "tool_use", TOOL_USE_TOKENS)
    text = describe_json(seen) if parsed.json_mode else describe(seen)
    stop_reason = "end_turn"
    hits = [text.find(s) for s in parsed.stop_sequences if s and s in text]
    if hits:
        text, stop_reason = text[: min(hits)], "stop_sequence"
    text, cut = truncate_words(text, parsed.max_tokens)
    if cut:
        stop_reason = "max_tokens"
    return Reply(text, None, stop_reason, word_count(text))


def converse_body(parsed: ConverseRequest, reply: Reply) -> dict[str, object]:
    return {
        "output": {"message": {"role": "assistant", "content": reply.content()}},
        "stopReason": reply.stop_reason,
        "usage": _usage(parsed, reply),
        "metrics": {"latencyMs": LATENCY_MS},
    }


async def stream_frames(
    parsed: ConverseRequest, reply: Reply, faults: FaultScript
) -> AsyncIterator[bytes]:
    """ConverseStream's order: messageStart; per block an optional contentBlockStart (tool
    uses only), the deltas and contentBlockStop; messageStop; metadata with the usage."""
    yield _event("messageStart", {"role": "assistant"})
    index = 0
    if reply.thought is not None:
        pieces = stream_pieces(reply.thought)
        thinking: list[dict[str, object]] = [
            {"reasoningContent": {"text": piece}} for piece in pieces
        ]
        thinking.append({"reasoningContent": {"signature": signature_for(reply.thought)}})
        for delta in thinking:
            yield _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": delta})
        yield _event("contentBlockStop", {"contentBlockIndex": 0})
        index = 1
    use = reply.tool_use
    if use is not None:
        start = {"toolUse": {"toolUseId": use.id, "name": use.name}}
        yield _event("contentBlockStart", {"contentBlockIndex": index, "start": start})
        pieces = stream_pieces(msgspec.json.encode(use.input).decode())
        deltas: list[dict[str, object]] = [{"toolUse": {"input": piece}} for piece in pieces]
    else:
        deltas = [{"text": piece} for piece in stream_pieces(reply.text or "")]
    for sent, delta in enumerate(deltas):
        if faults.midstream and sent == MIDSTREAM_DELTAS:
            break
        await asyncio.sleep(0)
        yield _event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})
    if faults.midstream:
        yield _exception(faults.status)
        return
    if deltas or use is not None:
        yield _event("contentBlockStop", {"contentBlockIndex": index})
    await asyncio.sleep(0)
    yield _event("messageStop", {"stopReason": reply.stop_reason})
    metadata: dict[str, object] = {
        "usage": _usage(parsed, reply),
        "metrics": {"latencyMs": LATENCY_MS},
    }
    yield _event("metadata", metadata)


def _event(name: str, payload: dict[str, object]) -> bytes:
    # Bedrock pads event payloads with a "p" field whose length hides the content's.
    padded = {**payload, "p": _PADDING[: 1 + len(msgspec.json.encode(payload)) % len(_PADDING)]}
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, msgspec.json.encode(padded))


def _exception(status: int | None) -> bytes:
    kind = STREAM_EXCEPTIONS.get(status or 0, "modelStreamErrorException")
    body: dict[str, object] = {"message": f"Emulated {kind} after the stream started."}
    if kind == "modelStreamErrorException":
        body |= {"originalStatusCode": 500, "originalMessage": "The model stopped unexpectedly."}
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_frame(headers, msgspec.json.encode(body))


def _usage(parsed: ConverseRequest, reply: Reply) -> dict[str, int]:
    """As Bedrock counts: ``inputTokens`` excludes cache reads and writes, the total has them."""
    cached = parsed.cache_read + parsed.cache_write
    usage = {
        "inputTokens": parsed.input_tokens,
        "outputTokens": reply.output_tokens,
        "totalTokens": parsed.input_tokens + cached + reply.output_tokens,
    }
    if parsed.caches:
        usage["cacheReadInputTokens"] = parsed.cache_read
        usage["cacheWriteInputTokens"] = parsed.cache_write
    return usage


def received_header(parsed: ConverseRequest) -> str:
    """What the emulator received, in the other emulators' shape; Bedrock refuses unknown
    fields, so ``extra_fields`` is always empty."""
    images = parsed.seen.images
    received = {
        "images": len(images),
        "mimes": [image.mime or "url" for image in images],
        "sizes": [f"{image.width}x{image.height}" for image in images],
        "extra_fields": [],
    }
    # Header values must be ASCII; stdlib json escapes what msgspec would emit raw.
    return json.dumps(received, separators=(",", ":"))


def error_response(error: BedrockError, request_id: str) -> Response:
    headers = {**error.response_headers(), "x-amzn-requestid": request_id}
    return _json(error.body(), status=error.status, headers=headers)


def _json(body: object, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _uuid(body: bytes) -> str:
    """A request id in AWS's UUID form, stable for a given body."""
    h = short_hash(body, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _read_faults(request: Request) -> FaultScript:
    try:
        return parse_faults(request.headers.get(FAULT_HEADER))
    except ValueError as exc:
        raise validation(str(exc)) from None


def _scripted_error(faults: FaultScript, *, stream: bool) -> BedrockError | None:
    """The HTTP failure the script asks for. In a stream, ``midstream`` turns ``status``
    into the exception frame that ends it instead (see ``STREAM_EXCEPTIONS``)."""
    if faults.quota:
        if faults.quota_variant:
            raise validation(f"{FAULT_HEADER}: unknown quota variant")
        return BedrockError(400, "ServiceQuotaExceededException", OUT_OF_QUOTA)
    status = faults.status
    if status is None or (faults.midstream and stream):
        return None
    default = "InternalServerException" if status >= 500 else "ValidationException"
    name, message = SCRIPTED.get(
        status, (default, f"Emulated failure with status {status} ({FAULT_HEADER}).")
    )
    return BedrockError(status, name, message)
