"""The Gemini emulator's routes and wire format: auth, scripted faults, answers, streams.

Mounted under ``/gemini`` by the emulator app, so clients use ``<base>/gemini`` as the base
URL (the google-genai SDK's ``http_options.base_url``) and the endpoints are
``<base>/gemini/v1beta/models/<model>:generateContent`` and
``<base>/gemini/v1beta/models/<model>:streamGenerateContent?alt=sse``.

- Auth: an ``x-goog-api-key`` header or a ``key`` query parameter (any non-empty value);
  without one, Google's 403 PERMISSION_DENIED. A key starting with ``invalid`` gets the 400
  INVALID_ARGUMENT Google answers for a bad key (``ErrorInfo`` reason ``API_KEY_INVALID``).
- Answers are describe.py's sentences; ``detail`` reads the part's or the request's
  ``mediaResolution`` (``low``, ``medium``, ``high``) and is ``auto`` when unset. Image
  tokens follow Gemini 2.x (``gemini_request.image_tokens``). ``toolConfig`` mode ANY
  answers with a ``functionCall``; ``responseMimeType: application/json`` with the JSON answer;
  ``maxOutputTokens`` cuts words (``MAX_TOKENS``), ``stopSequences`` cut text (``STOP``).
- Image models (a name with ``-image``, such as ``gemini-2.5-flash-image``) answer with the
  sentence and an ``inlineData`` PNG that says what was asked (``drawing.draw_picture``),
  ``PICTURE_TOKENS`` output tokens each, reported under ``candidatesTokensDetails``;
  ``responseModalities: ["IMAGE"]`` leaves the text out. Other models refuse IMAGE (and
  AUDIO) in ``responseModalities`` with Google's 400.
- Streams: ``alt=sse`` gives SSE ``data:`` events (CRLF-separated, as Google sends them) and no
  terminator; without it, one JSON array streamed piece by piece, as the REST API does.
- Faults (``x-emulator-fault``): ``status=429`` is RESOURCE_EXHAUSTED with a per-minute
  ``QuotaFailure`` and a ``RetryInfo`` (``retryDelay: "1s"``); ``quota`` is a 429 whose
  ``QuotaFailure`` names a per-day quota and that has no ``RetryInfo``; ``status=503`` is
  UNAVAILABLE; ``midstream`` sends an UNAVAILABLE error object as the last event after
  ``MIDSTREAM_CHUNKS`` chunks, then ends the body.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
import pybase64
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
from aperture.emulator.drawing import draw_picture
from aperture.emulator.faults import FAULT_HEADER, FaultScript, parse_faults
from aperture.emulator.gemini_errors import GoogleError, invalid
from aperture.emulator.gemini_request import GenerateRequest, parse_generate_request
from aperture.emulator.gemini_thinking import sign_part, thought_text
from aperture.emulator.logprobs import token_logprobs

__all__ = ["MIDSTREAM_CHUNKS", "MODELS", "RECEIVED_HEADER", "build_reply", "routes"]

MODELS = ("emulator-vision", "emulator-text", "gemini-2.5-flash-image")
# What gemini-2.5-flash-image charges for one 1024x1024 picture (ai.google.dev pricing).
PICTURE_TOKENS = 1290
RECEIVED_HEADER = "x-emulator-received"
VERSIONS = ("v1beta", "v1alpha", "v1")
METHODS = ("generateContent", "streamGenerateContent")
# A function call has no words to count; a fixed cost keeps usage deterministic.
FUNCTION_CALL_TOKENS = 10
# After a midstream fault the client has seen this many chunks.
MIDSTREAM_CHUNKS = 2

NO_API_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). Please "
    "use API Key or other form of API consumer identity to call this API."
)
BAD_API_KEY = "API key not valid. Please pass a valid API key."
RATE_LIMITED = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. "
    "Please retry in 1s."
)
BILLING_DISABLED = (
    "This API method requires billing to be enabled. Please enable billing on project "
    "#emulator by visiting https://console.developers.google.com/billing/enable?project=emulator "
    "then retry."
)
OUT_OF_QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)
SCRIPTED: dict[int, str] = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_HELP = {
    "@type": "type.googleapis.com/google.rpc.Help",
    "links": [
        {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
    ],
}


def _quota_failure(quota_id: str, metric: str) -> dict[str, object]:
    violation = {
        "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
        "quotaId": quota_id,
        "quotaDimensions": {"location": "global", "model": "emulator-vision"},
        "quotaValue": "3",
    }
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]}


@dataclass(frozen=True, slots=True)
class Reply:
    text: str | None
    call: dict[str, object] | None
    finish_reason: str
    output_tokens: int
    picture: str | None = None
    """The base64 PNG an image model drew, sent after the text (in a stream's last chunk)."""
    thinking: bool = False
    """The model thought: the answer's first call (or its text) carries a signature."""
    thought: str | None = None
    """The thought summary shown (``includeThoughts``), as a ``thought: true`` part first."""
    thought_tokens: int = 0

    def parts(
        self, text: str | None = None, *, last: bool = True, first: bool = True
    ) -> list[dict[str, object]]:
        shown: list[dict[str, object]] = (
            [{"text": self.thought, "thought": True}] if first and self.thought else []
        )
        if self.call is not None:
            call: dict[str, object] = {"functionCall": self.call}
            if self.thinking:
                call["thoughtSignature"] = sign_part(call)
            return [*shown, call]
        piece = self.text if text is None else text
        parts: list[dict[str, object]] = [{"text": piece}] if piece else []
        if last and parts and self.thinking:
            # Signed over the whole answer text, which is what a later turn sends back.
            parts[-1]["thoughtSignature"] = sign_part({"text": self.text})
        if last and self.picture is not None:
            parts.append({"inlineData": {"mimeType": "image/png", "data": self.picture}})
        return [*shown, *parts]


def routes() -> list[BaseRoute]:
    return [
        Route("/{version}/models", list_models, methods=["GET"]),
        Route("/{version}/models/{target}", model_method, methods=["POST"]),
        # Google answers unknown paths with its envelope (NOT_FOUND), not a bare 404.
        Route("/{path:path}", unknown_url, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]


async def model_method(request: Request) -> Response:
    body = await request.body()
    version = request.path_params["version"]
    model, _, method = str(request.path_params["target"]).rpartition(":")
    try:
        if version not in VERSIONS or method not in METHODS or not model:
            raise GoogleError(404, f"Method not found: {method or 'none'}.")
        _authorize(request)
        faults = _read_faults(request)
        if faults.delay_ms:
            await asyncio.sleep(faults.delay_ms / 1000)
        scripted = _scripted_error(faults)
        if scripted is not None:
            raise scripted
        parsed = parse_generate_request(body, model)
    except GoogleError as error:
        return error_response(error)
    reply = build_reply(parsed)
    response_id = short_hash(body)
    headers = {RECEIVED_HEADER: received_header(parsed)}
    if method == "generateContent":
        whole = response_chunk(parsed, reply, model, response_id, reply.parts(), final=True)
        return _json(whole, headers=headers)
    chunks = response_chunks(parsed, reply, model, response_id)
    sse = request.query_params.get("alt") == "sse"
    events = stream(chunks, sse=sse, midstream=faults.midstream)
    media_type = "text/event-stream" if sse else "application/json"
    return StreamingResponse(events, media_type=media_type, headers=headers)


async def list_models(request: Request) -> Response:
    try:
        _authorize(request)
    except GoogleError as error:
        return error_response(error)
    models = [
        {
            "name": f"models/{name}",
            "version": "001",
            "displayName": name,
            "inputTokenLimit": 1_048_576,
            "outputTokenLimit": 65_536,
            "supportedGenerationMethods": list(METHODS),
        }
        for name in MODELS
    ]
    return _json({"models": models})


async def unknown_url(request: Request) -> Response:
    path = "/" + str(request.path_params.get("path", ""))
    return error_response(GoogleError(404, f"The requested URL {path} was not found."))


def build_reply(parsed: GenerateRequest) -> Reply:
    """The deterministic answer: a forced function call, or the (JSON) description.

    Stop sequences cut the description at the first one it contains (Gemini still says
    ``STOP``); ``maxOutputTokens`` then cuts it to that many words (``MAX_TOKENS``).
    """
    reply = _answer(parsed)
    thinking = parsed.thinking
    if not thinking.on:
        return reply
    thought = thought_text(parsed.seen.asked)
    return dataclasses.replace(
        reply,
        thinking=True,
        thought=thought if thinking.include_thoughts else None,
        thought_tokens=word_count(thought),
    )


def _answer(parsed: GenerateRequest) -> Reply:
    seen, settings = parsed.seen, parsed.settings
    if parsed.tool_name is not None:
        call: dict[str, object] = {"name": parsed.tool_name, "args": {"text": seen.asked}}
        return Reply(None, call, "STOP", FUNCTION_CALL_TOKENS)
    text = describe_json(seen) if settings.json_mode else describe(seen)
    hits = [text.find(s) for s in settings.stop_sequences if s and s in text]
    if hits:
        text = text[: min(hits)]
    text, cut = truncate_words(text, settings.max_output_tokens)
    if not parsed.draws:
        return Reply(text, None, "MAX_TOKENS" if cut else "STOP", word_count(text))
    picture = pybase64.b64encode(draw_picture(seen.asked)).decode("ascii")
    words = word_count(text) if parsed.text_out else 0
    return Reply(text if parsed.text_out else None, None, "STOP", words + PICTURE_TOKENS, picture)


def response_chunk(
    parsed: GenerateRequest,
    reply: Reply,
    model: str,
    response_id: str,
    parts: list[dict[str, object]],
    *,
    final: bool,
    output_tokens: int | None = None,
) -> dict[str, object]:
    """One ``GenerateContentResponse``: the whole answer, or one streamed piece of it."""
    content: dict[str, object] = {"role": "model"}
    if parts:
        content["parts"] = parts
    candidates = []
    for index in range(parsed.settings.candidate_count):
        candidate: dict[str, object] = {"content": content, "index": index}
        if final:
            candidate["finishReason"] = reply.finish_reason
        if parsed.settings.logprobs is not None:
            candidate["logprobsResult"] = _logprobs_result(parts, parsed.settings.logprobs)
        candidates.append(candidate)
    tokens = reply.output_tokens if output_tokens is None else output_tokens
    usage = _usage(
        parsed,
        tokens * parsed.settings.candidate_count,
        PICTURE_TOKENS * parsed.settings.candidate_count if reply.picture and final else 0,
    )
    if reply.thought_tokens:
        # Gemini counts thoughts apart from the answer's tokens, and in the total.
        thoughts = reply.thought_tokens * parsed.settings.candidate_count
        usage["thoughtsTokenCount"] = thoughts
        usage["totalTokenCount"] = int(str(usage["totalTokenCount"])) + thoughts
    return {
        "candidates": candidates,
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": response_id,
    }


def _logprobs_result(parts: list[dict[str, object]], top: int) -> dict[str, object]:
    text = "".join(str(p["text"]) for p in parts if isinstance(p.get("text"), str))
    tokens = token_logprobs(text, top)
    return {
        "chosenCandidates": [{"token": t.token, "logProbability": t.logprob} for t in tokens],
        "topCandidates": [
            {"candidates": [{"token": s, "logProbability": lp} for s, lp in t.top]} for t in tokens
        ],
        "logProbabilitySum": round(sum(t.logprob for t in tokens), 3),
    }


def response_chunks(
    parsed: GenerateRequest, reply: Reply, model: str, response_id: str
) -> list[dict[str, object]]:
    """The stream: one chunk per word (usage running), the last with the finish reason."""
    if reply.call is not None or not reply.text:
        return [response_chunk(parsed, reply, model, response_id, reply.parts(), final=True)]
    drawn = PICTURE_TOKENS if reply.picture else 0
    pieces = stream_pieces(reply.text)
    chunks = []
    for n, piece in enumerate(pieces, 1):
        chunks.append(
            response_chunk(
                parsed,
                reply,
                model,
                response_id,
                reply.parts(piece, last=n == len(pieces), first=n == 1),
                final=n == len(pieces),
                output_tokens=word_count("".join(pieces[:n])) + (drawn if n == len(pieces) else 0),
            )
        )
    return chunks


async def stream(
    chunks: list[dict[str, object]], *, sse: bool, midstream: bool
) -> AsyncIterator[bytes]:
    if midstream:
        error = GoogleError(503, SCRIPTED[503])
        chunks = [*chunks[: min(MIDSTREAM_CHUNKS, len(chunks) - 1)], error.body()]
    for n, chunk in enumerate(chunks):
        await asyncio.sleep(0)
        encoded = msgspec.json.encode(chunk)
        if sse:
            yield b"data: " + encoded + b"\r\n\r\n"
        else:
            yield (b"[" if n == 0 else b",\r\n") + encoded
    if not sse:
        yield b"]"


def _usage(parsed: GenerateRequest, output_tokens: int, picture_tokens: int) -> dict[str, object]:
    prompt = parsed.prompt_tokens
    details: list[dict[str, object]] = [
        {"modality": "TEXT", "tokenCount": prompt - parsed.image_tokens}
    ]
    if parsed.image_tokens:
        details.append({"modality": "IMAGE", "tokenCount": parsed.image_tokens})
    usage: dict[str, object] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt + output_tokens,
        "promptTokensDetails": details,
    }
    if picture_tokens:
        # As Gemini reports an image model's answer: the picture's tokens apart from the text's.
        usage["candidatesTokensDetails"] = [
            {"modality": "TEXT", "tokenCount": output_tokens - picture_tokens},
            {"modality": "IMAGE", "tokenCount": picture_tokens},
        ]
    return usage


def received_header(parsed: GenerateRequest) -> str:
    """What the emulator received, in the other emulators' shape; Gemini refuses unknown
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


def error_response(error: GoogleError) -> Response:
    return _json(error.body(), status=error.code, headers=error.headers)


def _json(body: object, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _authorize(request: Request) -> None:
    key = request.headers.get("x-goog-api-key", "").strip()
    key = key or request.query_params.get("key", "").strip()
    if not key:
        raise GoogleError(403, NO_API_KEY)
    if key.startswith("invalid"):
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
        raise GoogleError(400, BAD_API_KEY, details=[info])


def _read_faults(request: Request) -> FaultScript:
    try:
        return parse_faults(request.headers.get(FAULT_HEADER))
    except ValueError as exc:
        raise invalid(str(exc)) from None


def _scripted_error(faults: FaultScript) -> GoogleError | None:
    """``quota``: the per-day 429 (``QuotaFailure``, no ``RetryInfo``);
    ``quota=billing_disabled``: the 403 whose ``ErrorInfo`` reason is ``BILLING_DISABLED``."""
    if faults.quota:
        return _spent(faults.quota_variant)
    status = faults.status
    if status is None:
        return None
    if status == 429:
        per_minute = _quota_failure(
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "generate_content_free_tier_requests",
        )
        retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}
        return GoogleError(429, RATE_LIMITED, details=[_HELP, per_minute, retry])
    message = SCRIPTED.get(status, f"Emulated failure with status {status} ({FAULT_HEADER}).")
    return GoogleError(status, message)


def _spent(variant: str) -> GoogleError:
    if variant == "":
        per_day = _quota_failure(
            "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            "generate_content_free_tier_requests",
        )
        return GoogleError(429, OUT_OF_QUOTA, details=[per_day, _HELP])
    if variant == "billing_disabled":
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "BILLING_DISABLED",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com", "consumer": "emulator"},
        }
        return GoogleError(403, BILLING_DISABLED, details=[info])
    raise invalid(f"{FAULT_HEADER}: unknown quota variant {variant!r}")
