"""Liveness and readiness."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aperture.api.drain import Drain
from aperture.metrics import CONTENT_TYPE

__all__ = ["healthz", "metrics", "readyz"]


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


async def metrics(request: Request) -> Response:
    services = getattr(request.app.state, "services", None)
    if services is None:
        return Response(b"", 503)
    return Response(await services.metrics.render(), media_type=CONTENT_TYPE)
