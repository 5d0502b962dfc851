"""The OpenAI emulator's ``POST /v1/responses``: the Responses object and its typed events.

The answer is the same deterministic description (or forced tool call, or JSON object) the
Chat Completions endpoint gives, as ``output`` items; a stream is the event sequence OpenAI
sends (``response.created`` ... ``response.completed``), numbered by ``sequence_number``.
Auth and scripted status faults are checked by the caller (``openai._authorized``); a
``midstream`` fault ends the stream with an ``error`` event and ``response.failed``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

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
from aperture.emulator.faults import FAULT_HEADER, parse_faults
from aperture.emulator.logprobs import token_logprobs
from aperture.emulator.openai_errors import OpenAIError
from aperture.emulator.openai_responses_request import ResponsesCall, parse_responses_request

__all__ = ["responses"]

TOOL_CALL_TOKENS = 10
MIDSTREAM_EVENTS = 2  # text deltas sent before a midstream fault
MIDSTREAM_ERROR = "The server had an error while processing your request."


async def responses(request: Request) -> Response:
    body = await request.body()
    try:
        call = parse_responses_request(body)
        faults = parse_faults(request.headers.get(FAULT_HEADER))
    except OpenAIError as error:
        return _json(error.body(), status=error.status, headers=error.headers)
    except ValueError as exc:
        bad = OpenAIError(400, str(exc), param=FAULT_HEADER)
        return _json(bad.body(), status=bad.status)
    rid = f"resp_{short_hash(body)}"
    output, usage, status = _answer(call, rid)
    response = _response(call, rid, int(time.time()), status, output, usage)
    headers = {"x-request-id": f"req_{short_hash(body)}"}
    if call.stream:
        events = _events(response, midstream=faults.midstream)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    return _json(response, headers=headers)


def _answer(call: ResponsesCall, rid: str) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    seen = call.seen
    suffix = rid.removeprefix("resp_")
    if call.tool_name is not None:
        arguments = msgspec.json.encode({"text": seen.asked}).decode()
        item = {
            "id": f"fc_{suffix}",
            "type": "function_call",
            "status": "completed",
            "call_id": f"call_{short_hash(seen.asked)}",
            "name": call.tool_name,
            "arguments": arguments,
        }
        return [item], _usage(seen, TOOL_CALL_TOKENS), "completed"
    text = describe_json(seen) if call.json_mode else describe(seen)
    text, cut = truncate_words(text, call.max_words)
    status = "incomplete" if cut else "completed"
    logprobs = _tokens(text, call.logprobs) if call.logprobs is not None else []
    message = {
        "id": f"msg_{suffix}",
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}],
    }
    return [message], _usage(seen, word_count(text)), status


def _tokens(text: str, top: int) -> list[dict[str, Any]]:
    """``output_text.logprobs`` as OpenAI sends them (the SDK's ``Logprob``)."""
    return [
        {
            "token": t.token,
            "logprob": t.logprob,
            "bytes": list(t.token.encode()),
            "top_logprobs": [
                {"token": a, "logprob": p, "bytes": list(a.encode())} for a, p in t.top
            ],
        }
        for t in token_logprobs(text, top)
    ]


def _usage(seen: Seen, output: int) -> dict[str, Any]:
    prompt = prompt_tokens(seen)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + output,
    }


def _response(
    call: ResponsesCall,
    rid: str,
    created: int,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": call.instructions,
        "model": call.model,
        "output": output,
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "store": False,
        "usage": usage,
    }


async def _events(response: dict[str, Any], *, midstream: bool) -> AsyncIterator[bytes]:
    seq = 0

    def sse(kind: str, payload: dict[str, Any]) -> bytes:
        nonlocal seq
        data = msgspec.json.encode({"type": kind, "sequence_number": seq, **payload})
        seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"

    start = {**response, "status": "in_progress", "output": [], "usage": None}
    yield sse("response.created", {"response": start})
    yield sse("response.in_progress", {"response": start})
    for index, item in enumerate(response["output"]):
        opened = {**item, "status": "in_progress"}
        if item["type"] == "message":
            opened["content"] = []
        elif item["type"] == "function_call":
            opened["arguments"] = ""
        yield sse("response.output_item.added", {"output_index": index, "item": opened})
        if item["type"] == "message":
            part = item["content"][0]
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            empty = {**part, "text": "", "logprobs": []}
            yield sse("response.content_part.added", {**where, "part": empty})
            tokens = part["logprobs"]
            for sent, piece in enumerate(stream_pieces(part["text"])):
                if midstream and sent == MIDSTREAM_EVENTS:
                    yield sse("error", {"code": "server_error", "message": MIDSTREAM_ERROR})
                    failed = {
                        **start,
                        "status": "failed",
                        "error": {"code": "server_error", "message": MIDSTREAM_ERROR},
                    }
                    yield sse("response.failed", {"response": failed})
                    return
                await asyncio.sleep(0)
                # The emulator's tokens are its stream pieces: one token per delta.
                piece_logprobs = tokens[sent : sent + 1]
                yield sse(
                    "response.output_text.delta",
                    {**where, "delta": piece, "logprobs": piece_logprobs},
                )
            done = {**where, "text": part["text"], "logprobs": tokens}
            yield sse("response.output_text.done", done)
            yield sse("response.content_part.done", {**where, "part": part})
        else:
            where = {"item_id": item["id"], "output_index": index}
            for piece in stream_pieces(item["arguments"]):
                await asyncio.sleep(0)
                yield sse("response.function_call_arguments.delta", {**where, "delta": piece})
            done = {**where, "name": item["name"], "arguments": item["arguments"]}
            yield sse("response.function_call_arguments.done", done)
        yield sse("response.output_item.done", {"output_index": index, "item": item})
    kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    yield sse(kind, {"response": response})


def _json(body: object, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )
