"""Liveness and readiness."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aperture.api.drain import Drain
from aperture.dialects.openai.outbound import render_error
from aperture.errors import NotFoundError
from aperture.metrics import CONTENT_TYPE

__all__ = ["healthz", "metrics_endpoint", "readyz"]

Endpoint = Callable[[Request], Awaitable[Response]]


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    drain = Drain.of(request.scope)
    if drain is not None and drain.draining:
        # False at once on SIGTERM, so a load balancer stops sending before the listener
        # closes; liveness (/healthz) stays true while the drain runs.
        return JSONResponse({"status": "draining"}, 503)
    ready = getattr(request.app.state, "services", None) is not None
    return JSONResponse({"status": "ready" if ready else "starting"}, 200 if ready else 503)


def metrics_endpoint(port: Literal["public", "admin"]) -> Endpoint:
    """``GET /metrics`` as mounted on ``port``: answered there only if ``server.metrics_port``
    says so, and only to a scrape that sends ``server.metrics_token`` when one is set."""

    async def metrics(request: Request) -> Response:
        services = getattr(request.app.state, "services", None)
        if services is None:
            return Response(b"", 503)
        server = services.settings.server
        if server.metrics_port != port:
            moved = NotFoundError(f"/metrics is served on the {server.metrics_port} port here.")
            return Response(render_error(moved), 404, media_type="application/json")
        token: str | None = server.metrics_token
        if token is not None:
            header = request.headers.get("authorization", "")
            given = header[7:].strip() if header[:7].lower() == "bearer " else ""
            # Constant time: the token is a secret a scrape config holds.
            if not hmac.compare_digest(given.encode(), token.encode()):
                return Response(
                    b"metrics need server.metrics_token as `Authorization: Bearer <token>`\n",
                    401,
                    headers={"WWW-Authenticate": "Bearer"},
                    media_type="text/plain",
                )
        return Response(await services.metrics.render(), media_type=CONTENT_TYPE)

    return metrics
