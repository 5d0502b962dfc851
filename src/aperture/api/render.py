"""Errors rendered once, where they leave, as HTTP responses."""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from aperture.errors import (
    GatewayError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    ServiceUnavailableError,
    clip,
    quote,
)
from aperture.storage import StorageError

__all__ = ["error_response", "routing_error", "store_unavailable"]


def error_response(
    error: GatewayError, request_id: str, render: Callable[[GatewayError], bytes]
) -> Response:
    """``error`` in the client's dialect, with the headers clients act on."""
    headers = dict(error.headers)
    if request_id:
        headers["x-request-id"] = request_id
    if not error.should_retry:
        # Both official SDKs honour this and stop retrying deterministic failures.
        headers["x-should-retry"] = "false"
    return Response(
        render(error),
        status_code=error.status_code,
        headers=headers,
        media_type="application/json",
    )


def store_unavailable(exc: StorageError) -> ServiceUnavailableError:
    """What a client is told when a store failed under its request: retry shortly.

    The store's own message stays in the log: it names hosts and drivers."""
    return ServiceUnavailableError(
        "A store the gateway depends on is unreachable; try again shortly.",
        headers={"retry-after": "1"},
    )


def routing_error(request: Request, exc: HTTPException) -> GatewayError:
    """Starlette's "no such path" and "not that method" as errors of the tree, on both ports.

    The path and method are the client's: quoted with a bound, like every echoed value.
    """
    path = quote(request.scope["path"])
    if exc.status_code == 405:
        return MethodNotAllowedError(f"{clip(request.method, 16)} is not allowed on {path}.")
    if exc.status_code == 404:
        return NotFoundError(f"There is no endpoint at {path}.")
    return InvalidRequestError(str(exc.detail))
