"""The Cohere emulator's routes and wire format: v2 chat answers and typed-event SSE streams.

Mounted under ``/cohere`` by the emulator app, so a provider's ``base_url`` is
``<base>/cohere`` and the chat endpoint ``<base>/cohere/v2/chat``. Errors are Cohere's
``{"id", "message"}`` bodies; a failure after the 200 arrives as a ``message-end`` event
whose ``finish_reason`` is ``ERROR`` with an ``error`` text.

Answers are ``describe.py``'s sentences; usage follows Cohere's image tile formula
(``cohere_request.image_tokens``). With ``tool_choice: "REQUIRED"`` the emulated model
states a ``tool_plan`` and calls the first tool with ``{"text": <what was asked>}``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from aperture.emulator.cohere_request import (
    ChatRequest,
    CohereError,
    image_tokens,
    parse_chat_request,
)
from aperture.emulator.describe import (
    describe,
    describe_json,
    short_hash,
    stream_pieces,
    truncate_words,
    word_count,
)
from aperture.emulator.faults import FAULT_HEADER, FaultScript, parse_faults
from aperture.emulator.logprobs import EmulatedToken, token_logprobs

__all__ = ["MIDSTREAM_DELTAS", "MIDSTREAM_ERROR", "PREAMBLE_TOKENS", "routes"]

TOOL_CALL_TOKENS = 10
# Cohere's ``tokens.input_tokens`` also counts its own prompt template; billing does not.
PREAMBLE_TOKENS = 200
MIDSTREAM_DELTAS = 2
MIDSTREAM_ERROR = "internal server error, this has been reported to our developers"
NO_API_KEY = "no api key supplied"
SCRIPTED: dict[int, str] = {
    400: "invalid request: emulated failure",
    401: "invalid api token",
    402: (
        "Please add or update your payment method at https://dashboard.cohere.com/billing "
        "to continue using the API."
    ),
    404: "model 'emulator' not found, make sure the correct model ID was used",
    422: "invalid request: emulated unprocessable entity",
    429: "You are past the per minute request limit, please wait and try again later.",
    498: "invalid api token",
    500: MIDSTREAM_ERROR,
    503: "service unavailable",
    504: "request timed out",
}


@dataclass(frozen=True, slots=True)
class Reply:
    text: str | None
    tool_plan: str | None
    tool_call: dict[str, Any] | None
    finish_reason: str
    input_tokens: int
    output_tokens: int

    def usage(self) -> dict[str, Any]:
        billed = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        tokens = {**billed, "input_tokens": self.input_tokens + PREAMBLE_TOKENS}
        return {"billed_units": billed, "tokens": tokens, "cached_tokens": 0}


def routes() -> list[BaseRoute]:
    return [Route("/v2/chat", chat, methods=["POST"])]


async def chat(request: Request) -> Response:
    body = await request.body()
    response_id = _uuid(body)
    try:
        _authorize(request)
        faults = _read_faults(request)
        if faults.delay_ms:
            await asyncio.sleep(faults.delay_ms / 1000)
        scripted = _scripted_error(faults)
        if scripted is not None:
            raise scripted
        parsed = parse_chat_request(body)
    except CohereError as error:
        return _json({"id": response_id, "message": error.message}, error.status, error.headers)
    reply = build_reply(parsed)
    if parsed.stream:
        events = stream_events(
            reply, response_id, midstream=faults.midstream, logprobs=parsed.logprobs
        )
        return StreamingResponse(events, media_type="text/event-stream")
    message: dict[str, Any] = {"role": "assistant"}
    if reply.tool_call is not None:
        message["tool_plan"] = reply.tool_plan
        message["tool_calls"] = [reply.tool_call]
    else:
        message["content"] = [{"type": "text", "text": reply.text}] if reply.text else []
    answer: dict[str, Any] = {
        "id": response_id,
        "message": message,
        "finish_reason": reply.finish_reason,
        "usage": reply.usage(),
    }
    if parsed.logprobs:
        answer["logprobs"] = [logprob_item(t) for t in token_logprobs(reply.text or "", 0)]
    return _json(answer)


def logprob_item(token: EmulatedToken) -> dict[str, Any]:
    """A ``LogprobItem``: one chunk of text, its token ids and their logprobs."""
    token_id = int(short_hash(token.token, 6), 16)
    return {"text": token.token, "token_ids": [token_id], "logprobs": [token.logprob]}


def build_reply(chat: ChatRequest) -> Reply:
    """The deterministic answer: a required tool call, a JSON object or the description."""
    seen = chat.seen
    prompt = math.ceil(seen.text_chars / 4) + sum(image_tokens(i) for i in seen.images)
    if chat.tool_name is not None:
        arguments = msgspec.json.encode({"text": seen.asked}).decode()
        call = {
            "id": f"{chat.tool_name}_{short_hash(seen.asked, 12)}",
            "type": "function",
            "function": {"name": chat.tool_name, "arguments": arguments},
        }
        plan = f"I will call {chat.tool_name} with the question."
        return Reply(None, plan, call, "TOOL_CALL", prompt, TOOL_CALL_TOKENS)
    text = describe_json(seen) if chat.json_mode else describe(seen)
    text, cut = truncate_words(text, chat.max_tokens)
    reason = "MAX_TOKENS" if cut else "COMPLETE"
    return Reply(text, None, None, reason, prompt, word_count(text))


async def stream_events(
    reply: Reply, response_id: str, *, midstream: bool, logprobs: bool = False
) -> AsyncIterator[bytes]:
    """Cohere's event order: message-start, content or tool-plan/tool-call, message-end."""

    def event(kind: str, body: dict[str, Any]) -> bytes:
        data = msgspec.json.encode({"type": kind, **body})
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    start = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    yield event("message-start", {"id": response_id, "delta": {"message": start}})
    if reply.tool_call is not None:
        body = _tool_events(reply)
    else:
        body = [
            ("content-start", {"index": 0, "delta": _msg(content={"type": "text", "text": ""})})
        ]
        for token in token_logprobs(reply.text or "", 0):
            delta: dict[str, Any] = {"index": 0, "delta": _msg(content={"text": token.token})}
            if logprobs:
                delta["logprobs"] = logprob_item(token)
            body.append(("content-delta", delta))
        body.append(("content-end", {"index": 0}))
    sent = 0
    for kind, payload in body:
        if midstream and sent == MIDSTREAM_DELTAS:
            failed = {"finish_reason": "ERROR", "error": MIDSTREAM_ERROR}
            yield event("message-end", {"delta": failed})
            return
        await asyncio.sleep(0)
        yield event(kind, payload)
        sent += kind.endswith("-delta")
    end = {"finish_reason": reply.finish_reason, "usage": reply.usage()}
    yield event("message-end", {"delta": end})
    yield b"data: [DONE]\n\n"


def _tool_events(reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    call = reply.tool_call or {}
    events: list[tuple[str, dict[str, Any]]] = [
        ("tool-plan-delta", {"delta": _msg(tool_plan=piece)})
        for piece in stream_pieces(reply.tool_plan or "")
    ]
    head = {**call, "function": {**call["function"], "arguments": ""}}
    events.append(("tool-call-start", {"index": 0, "delta": _msg(tool_calls=head)}))
    for piece in stream_pieces(call["function"]["arguments"]):
        arguments = {"function": {"arguments": piece}}
        events.append(("tool-call-delta", {"index": 0, "delta": _msg(tool_calls=arguments)}))
    events.append(("tool-call-end", {"index": 0}))
    return events


def _msg(**message: Any) -> dict[str, Any]:
    return {"message": message}


def _uuid(body: bytes) -> str:
    digest = short_hash(body, 32)
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = msgspec.json.encode(body)
    return Response(content, status_code=status, headers=headers, media_type="application/json")


def _authorize(request: Request) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise CohereError(401, NO_API_KEY)


def _read_faults(request: Request) -> FaultScript:
    try:
        return parse_faults(request.headers.get(FAULT_HEADER))
    except ValueError as exc:
        raise CohereError(400, f"invalid request: {exc}") from None


def _scripted_error(faults: FaultScript) -> CohereError | None:
    # A spent account is 402 Payment Required on Cohere's errors page; a trial key's monthly
    # cap is a 429 indistinguishable from the per-minute limit, so it is not scripted here.
    if faults.quota:
        if faults.quota_variant:
            raise CohereError(400, f"invalid request: {FAULT_HEADER}: unknown quota variant")
        return CohereError(402, SCRIPTED[402])
    status = faults.status
    if status is None:
        return None
    return CohereError(status, SCRIPTED.get(status, f"emulated failure with status {status}"))
