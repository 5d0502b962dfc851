"""Google Gemini, Developer API (``generativelanguage.googleapis.com``, ``v1beta``).

Pure: builds ``generateContent`` / ``streamGenerateContent?alt=sse`` requests and parses
responses, SSE streams and Google's error envelope. The URL depends on ``request.stream``,
so ``build_request`` chooses it. The key travels in the ``x-goog-api-key`` header, never in
the ``?key=`` query, which ends up in access logs.

How the body is translated is documented in ``_gemini_request``, how errors are classified
in ``_gemini_response``, and schema conversion in ``_gemini_schema``.

Streams: every ``data:`` event is a whole ``GenerateContentResponse``; there is no ``[DONE]``
terminator (providers.md §5.5). The parser says ``done`` once every candidate it has seen
carries a ``finishReason``, or the prompt was blocked; the body then simply ends, which is
why ``stream_ends_with_body`` tells dispatch that a clean end of the body completes the
stream too. Gemini sends each function call whole, in one part: a tool call streams as one
delta carrying its id, name and complete arguments.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import quote

from aperture.errors import UpstreamError
from aperture.model import (
    ChatRequest,
    ChatResponse,
    Choice,
    FinishReason,
    StreamEvent,
    Target,
    Thought,
    Usage,
)
from aperture.providers._gemini_request import build_body, tool_call_id
from aperture.providers._gemini_response import (
    GeminiCandidate,
    classify,
    compact,
    decode_error,
    decode_response,
    finish_reason,
    to_choice,
    to_usage,
)
from aperture.providers._gemini_spec import DEFAULT_BASE_URL
from aperture.providers._json_body import encode_body
from aperture.providers._stream import StreamAssembler
from aperture.upstream import Framing, SseEvent, UpstreamRequest

__all__ = ["API_VERSION", "DEFAULT_BASE_URL", "GeminiProvider"]

API_VERSION = "v1beta"
# A base URL that already names an API version (".../v1beta", ".../v1alpha") is used as is.
_VERSIONED = re.compile(r"/v\d+(?:alpha|beta)?\d*$")


class GeminiProvider:
    """The ``gemini`` provider kind."""

    stream_framing: ClassVar[Framing] = "sse"
    stream_ends_with_body: ClassVar[bool] = True
    """Gemini ends a stream by closing the body: a clean end of it completes the stream."""

    def build_request(self, request: ChatRequest, target: Target) -> UpstreamRequest:
        provider = target.provider
        headers = {"Content-Type": "application/json", **provider.headers}
        if provider.api_key:
            headers["x-goog-api-key"] = provider.api_key
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        url = f"{_base(provider.base_url)}/{_model_path(target.upstream_model)}:{method}"
        return UpstreamRequest(url, headers, encode_body(build_body(request)))

    def parse_response(self, body: bytes, target: Target) -> ChatResponse:
        response = decode_response(body, target)
        if response.error is not None:
            raise classify(None, response.error, {}, target)
        if response.candidates:
            choices = tuple(to_choice(c) for c in response.candidates)
        else:
            # A blocked prompt has no candidate; anything else without one is an empty answer.
            reason: FinishReason = "content_filter" if response.blocked else "stop"
            choices = (Choice(index=0, content=None, finish_reason=reason),)
        usage = response.usage_metadata
        return ChatResponse(
            id=response.response_id or "",
            model=response.model_version or target.upstream_model,
            # The Developer API sends no creation time; the answer was created just now.
            created=int(time.time()),
            choices=choices,
            usage=to_usage(usage) if usage is not None else None,
        )

    def stream_parser(self, target: Target) -> _StreamParser:
        return _StreamParser(target)

    def parse_error(
        self, status: int, body: bytes, headers: Mapping[str, str], target: Target
    ) -> UpstreamError:
        return classify(status, decode_error(body), headers, target)


class _StreamParser:
    """Gemini's chunks to canonical events.

    ``id`` and ``model`` hold the last ``responseId`` and ``modelVersion`` seen, for callers
    that want them: the canonical stream events carry neither.
    """

    def __init__(self, target: Target) -> None:
        self._target = target
        self.done = False
        self.id = ""
        self.model = ""
        self._usage: Usage | None = None
        self._asm = StreamAssembler()

    def feed(self, event: SseEvent) -> list[StreamEvent]:
        if not event.data.strip():
            return []
        chunk = decode_response(event.data, self._target)
        if chunk.error is not None:
            raise classify(None, chunk.error, {}, self._target)
        self.id = chunk.response_id or self.id
        self.model = chunk.model_version or self.model
        if chunk.usage_metadata is not None:
            # Each chunk's usage is the running total: the last one is the answer's.
            self._usage = to_usage(chunk.usage_metadata)
        asm = self._asm
        for candidate in chunk.candidates:
            self._candidate(candidate)
        if chunk.blocked:
            asm.role()
            asm.finish("content_filter")
        if asm.all_finished:
            self.done = True
            if self._usage is not None:
                asm.usage(self._usage)
        return asm.drain()

    def _candidate(self, candidate: GeminiCandidate) -> None:
        asm, index = self._asm, candidate.index
        asm.role(index)
        thought = candidate.thought()
        if thought is not None and thought.text:
            asm.thought(Thought(thought.text), index)
        asm.text("".join(candidate.texts()), index, candidate.logprobs())
        if thought is not None and thought.signature:
            # After the text it came with: a signature ends the thought it belongs to.
            asm.thought(Thought(signature=thought.signature), index)
        for image in candidate.images():
            asm.image(image, index)
        for call in candidate.calls():
            call_id = tool_call_id(asm.tool_count(index), call.name)
            asm.tool_call(call_id, call.name, compact(call.args), index)
        called = asm.tool_count(index) > 0
        asm.finish(finish_reason(candidate.finish_reason, called=called), index)


def _base(base_url: str | None) -> str:
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    return base if _VERSIONED.search(base) else f"{base}/{API_VERSION}"


def _model_path(model: str) -> str:
    """``models/<name>``; a full resource name (``tunedModels/...``) is kept as it is."""
    name = model.removeprefix("models/")
    path = name if "/" in name else f"models/{name}"
    return quote(path, safe="/-._~@")
