"""Pure ASGI middleware: every response carries an ``x-request-id``; with tracing on, every
request is one ``aperture.request`` span."""

from __future__ import annotations

import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aperture.tracing import Tracer

__all__ = ["RequestIdMiddleware", "TracingMiddleware"]


class RequestIdMiddleware:
    """Adds ``x-request-id`` to responses whose endpoint did not set one (errors, 404s)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                if not any(name == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", f"req_{secrets.token_hex(12)}".encode()))
            await send(message)

        await self.app(scope, receive, send_with_id)


# Probes and scrapes arrive every few seconds and say nothing about traffic.
_UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})
# The W3C trace-context headers: a caller's trace continues through the gateway.
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})


class TracingMiddleware:
    """The request's root span, open until the last byte of the answer (streams included),
    so the pipeline's and the router's spans nest under it.

    Installed outside ``RequestIdMiddleware`` to see the final ``x-request-id``, and only
    when tracing is on: a gateway without tracing does not pay for the layer.
    """

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNTRACED:
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _TRACE_HEADERS
        }
        attributes = {"http.request.method": scope["method"], "url.path": scope["path"]}
        with self.tracer.span(
            "aperture.request", attributes, kind="server", remote_parent=carrier or None
        ) as span:

            async def send_traced(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status: int = message["status"]
                    span.set("http.response.status_code", status)
                    if status >= 500:
                        span.fail(str(status))
                    for name, value in message.get("headers", ()):
                        if name == b"x-request-id":
                            span.set("aperture.request_id", value.decode("latin-1"))
                await send(message)

            try:
                await self.app(scope, receive, send_traced)
            finally:
                # The router fills in the matched route (a template, never a query string).
                route = getattr(scope.get("route"), "path", None)
                if isinstance(route, str):
                    span.set("http.route", route)
