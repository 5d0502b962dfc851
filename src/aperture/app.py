"""``create_app``: wiring only. Resources come from the lifespan, never from globals."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import Message, Receive, Scope, Send

from aperture.api.admin import create_admin_app
from aperture.api.chat import new_request_id
from aperture.api.middleware import RequestIdMiddleware, TracingMiddleware
from aperture.api.render import routing_error, store_unavailable
from aperture.api.routes import Endpoint, direct_routes, public_routes
from aperture.dialects.openai.outbound import render_error
from aperture.errors import GatewayError
from aperture.services import open_services
from aperture.settings import Settings
from aperture.settings.demo import include_demo
from aperture.storage import StorageError
from aperture.tracing import NO_TRACER, Tracer

__all__ = ["create_app", "create_apps"]

log = logging.getLogger("aperture")


def create_app(settings: Settings, *, tracer: Tracer = NO_TRACER) -> Starlette:
    """The public API alone (tests, and deployments that keep admin elsewhere)."""
    return create_apps(settings, tracer=tracer)[0]


def create_apps(settings: Settings, *, tracer: Tracer = NO_TRACER) -> tuple[Starlette, Starlette]:
    """The public API and the admin API, sharing one set of services.

    The public app's lifespan owns the services and hands them to the admin app, so both
    see the same keys, catalog and storage. ``tracer`` belongs to the caller, who closes it.
    """
    # Here, where the public port is final: the demo's providers are answered on it.
    settings = include_demo(settings)
    admin = create_admin_app()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            async with AsyncExitStack() as stack:
                services = await open_services(settings, stack, group, tracer)
                app.state.services = admin.state.services = services
                yield
            group.cancel_scope.cancel()

    routes = public_routes()
    if settings.server.emulator:
        from aperture.emulator import create_emulator_app  # the demo only

        routes.append(Mount("/emulator", create_emulator_app()))
    middleware = [Middleware(RequestIdMiddleware)]
    if tracer.enabled:
        middleware.insert(0, Middleware(TracingMiddleware, tracer=tracer))
    public = _Gateway(
        # With tracing on, every request goes through the middleware that opens its span.
        direct={} if tracer.enabled else direct_routes(),
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: _http_error,
            StorageError: _unexpected_error,
            Exception: _unexpected_error,
        },
    )
    return public, admin


class _Gateway(Starlette):
    """Starlette, with the chat endpoints reached by one dictionary lookup.

    Chat requests are nearly all the traffic, and the general stack (two error layers, the
    request-id layer, the router's pattern matching, the endpoint wrapper) costs them more
    than their own authentication. Their endpoints render every error themselves and set
    ``x-request-id``, so the stack adds nothing for them; everything else goes through it.
    """

    def __init__(self, *, direct: Mapping[str, Endpoint], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._direct = direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self._direct.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await _serve_direct(endpoint, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def _serve_direct(endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
    """What the stack would do for ``endpoint``: call it, send its response, and answer a
    bug with a logged 500 if nothing has been sent yet."""
    started = False

    async def send_tracking(message: Message) -> None:
        nonlocal started
        started = True
        await send(message)

    request = Request(scope, receive)
    try:
        response = await endpoint(request)
        await response(scope, receive, send_tracking)
    except Exception as exc:
        if started:
            raise  # mid-answer: the server logs it and closes the connection
        response = await _unexpected_error(request, exc)
        response.headers["x-request-id"] = new_request_id()
        await response(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = routing_error(request, exc)
    return Response(render_error(error), error.status_code, media_type="application/json")


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, StorageError):
        # An outage, not a bug: the client may retry; the log says which store and why.
        log.warning("store failed on %s: %s", request.url.path, exc)
        unavailable = store_unavailable(exc)
        return Response(
            render_error(unavailable),
            unavailable.status_code,
            headers=dict(unavailable.headers),
            media_type="application/json",
        )
    # A bug, not a bad input: logged with its traceback here, never shown to the client.
    log.exception("unexpected error on %s", request.url.path)
    error = GatewayError("The gateway hit an internal error; it has been logged.")
    return Response(render_error(error), 500, media_type="application/json")
