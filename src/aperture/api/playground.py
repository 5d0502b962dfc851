"""The console's playground: a request through the real public pipeline, and what it sent.

``POST /v1/admin/playground/{dialect}`` takes a body of that dialect (``chat``, ``messages``,
``responses``, ``c1``) and runs it through the same endpoint the public port serves, as the
caller's admin principal (handed over in the scope, ``auth.PRINCIPAL``): the same intake,
normalisation, routing, governance, budgets and audit as any client's request, under the
operator's own key. It is served on the admin port rather than sent from the browser to the
public port so no key reaches the page (a session holds only the key's id) and no
cross-origin access has to be opened.

While it runs, an upstream tap records each attempt's request as built for its target,
base64 elided, with no headers (they carry the provider's credentials) and no userinfo or
query in the URL;
``GET /v1/admin/playground/{request_id}`` answers them. Kept in memory, the last few only.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aperture.api.admin_auth import admin_services, refusal_headers
from aperture.api.auth import PRINCIPAL
from aperture.api.chat import ANTHROPIC, C1, OPENAI, RESPONSES, UPSTREAM_TAP, chat_endpoint
from aperture.dialects.openai.outbound import render_error
from aperture.errors import GatewayError, NotFoundError, quote
from aperture.model import ChatRequest, Target
from aperture.providers import provider_for

__all__ = ["Traces", "elide_base64", "playground_routes", "shown_url"]

_DIALECTS = {
    "chat": ("/v1/chat/completions", chat_endpoint(OPENAI)),
    "messages": ("/v1/messages", chat_endpoint(ANTHROPIC)),
    "responses": ("/v1/responses", chat_endpoint(RESPONSES)),
    "c1": ("/c1/chat", chat_endpoint(C1)),
}
_KEPT_TRACES = 50
# Long runs of the base64 alphabet: image and document payloads, whatever field holds them.
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{200,}={0,2}")
_DATA_URI = re.compile(r"(data:[^;,]{1,100}(?:;[^;,]{1,100})*;base64,)(.*)", re.DOTALL)


@dataclass(slots=True)
class Trace:
    """What one playground request sent upstream, attempt by attempt."""

    upstream: list[dict[str, Any]] = field(default_factory=list)

    def tap(self, request: ChatRequest, target: Target) -> None:
        try:
            built = provider_for(target.provider.kind).build_request(request, target)
        except GatewayError as error:  # the attempt itself will fail the same way
            self.upstream.append({"target": _target_key(target), "error": error.message})
            return
        self.upstream.append(
            {
                "target": _target_key(target),
                "method": built.method,
                "url": shown_url(built.url),
                "body": _shown_body(built.body),
            }
        )


class Traces:
    """The upstream requests of the last playground requests, by request id."""

    def __init__(self, limit: int = _KEPT_TRACES) -> None:
        self._limit = limit
        self._by_id: OrderedDict[str, Trace] = OrderedDict()

    def put(self, request_id: str, trace: Trace) -> None:
        self._by_id[request_id] = trace
        while len(self._by_id) > self._limit:
            self._by_id.popitem(last=False)

    def get(self, request_id: str) -> Trace | None:
        return self._by_id.get(request_id)


def playground_routes() -> list[BaseRoute]:
    return [
        Route("/v1/admin/playground/{dialect}", _send, methods=["POST"]),
        Route("/v1/admin/playground/{request_id}", _trace, methods=["GET"]),
    ]


def elide_base64(value: Any) -> Any:
    """``value`` (decoded JSON) with every base64 payload replaced by a note of its size."""
    if isinstance(value, dict):
        return {k: elide_base64(v) for k, v in value.items()}
    if isinstance(value, list):
        return [elide_base64(v) for v in value]
    if isinstance(value, str):
        uri = _DATA_URI.fullmatch(value)
        if uri is not None:
            return f"{uri.group(1)}…({len(uri.group(2))} base64 characters elided)"
        if _BASE64.fullmatch(value):
            return f"…({len(value)} base64 characters elided)"
    return value


def _shown_body(body: bytes) -> Any:
    try:
        return elide_base64(msgspec.json.decode(body))
    except msgspec.DecodeError:
        return f"({len(body)} bytes, not JSON)"


def shown_url(url: str) -> str:
    """``url`` without userinfo or query: a base URL may carry credentials in either."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return f"{shown}?…" if parts.query else shown


def _target_key(target: Target) -> str:
    return f"{target.provider.name}/{target.upstream_model}"


def _error(error: GatewayError) -> Response:
    return Response(
        render_error(error),
        error.status_code,
        headers=refusal_headers(error),
        media_type="application/json",
    )


async def _send(request: Request) -> ASGIApp:
    try:
        _, principal = await admin_services(request)
        found = _DIALECTS.get(request.path_params["dialect"])
        if found is None:
            raise NotFoundError(
                f"There is no playground dialect {quote(request.path_params['dialect'])} "
                f"(known: {', '.join(_DIALECTS)}).",
                param="dialect",
            )
    except GatewayError as error:
        return _error(error)
    path, endpoint = found
    trace = Trace()
    # The public endpoint's own request: its path, the JSON body as sent, the caller's
    # admin principal as its caller, and nothing else of the browser's (no cookie or
    # header reaches it).
    headers = [(b"content-type", b"application/json")]
    length = request.headers.get("content-length")
    if length is not None:
        headers.append((b"content-length", length.encode("latin-1")))
    scope: Scope = {
        **request.scope,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        UPSTREAM_TAP: trace.tap,
        PRINCIPAL: principal,
    }
    answer = await endpoint(Request(scope, request.receive))
    return _Traced(answer, trace, request.app.state.playground_traces)


class _Traced:
    """The endpoint's response, sent unchanged; its request id files the trace."""

    def __init__(self, inner: ASGIApp, trace: Trace, traces: Traces) -> None:
        self._inner = inner
        self._trace = trace
        self._traces = traces

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                for name, value in message.get("headers", ()):
                    if name == b"x-request-id":
                        self._traces.put(value.decode("latin-1"), self._trace)
            await send(message)

        await self._inner(scope, receive, sending)


async def _trace(request: Request) -> Response:
    try:
        await admin_services(request)
        request_id = request.path_params["request_id"]
        trace = request.app.state.playground_traces.get(request_id)
        if trace is None:
            raise NotFoundError(
                f"There is no playground request {quote(request_id)} in this process "
                "(the last few are kept).",
                param="request_id",
            )
    except GatewayError as error:
        return _error(error)
    return Response(
        msgspec.json.encode({"request_id": request_id, "upstream": trace.upstream}),
        media_type="application/json",
    )
