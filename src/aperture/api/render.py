"""Errors rendered once, where they leave, as HTTP responses."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response

from aperture.errors import GatewayError

__all__ = ["error_response"]


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
