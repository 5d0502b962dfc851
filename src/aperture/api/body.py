"""Read a request body with a hard cap, before anything parses it."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from aperture.errors import RequestTimeoutError, RequestTooLargeError

__all__ = ["TIMED_OUT", "ClientDisconnect", "read_body"]

TIMED_OUT = "aperture.body_timed_out"
"""Set in the scope by the server when the body missed its deadline (``server.body_timeout_s``):
the application then sees a disconnect, and this says it was the server's doing."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing anything over ``limit`` bytes as early as possible.

    A declared Content-Length over the cap is refused before reading; a chunked body is
    counted as it arrives, so an unbounded upload never sits in memory.

    Raises:
        RequestTooLargeError: the body is over ``limit``.
        RequestTimeoutError: the body did not arrive within the server's deadline (the
            server has already answered 408 and closed the connection).
        ClientDisconnect: the client went away before sending it all.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    # From ``receive`` itself rather than ``request.stream()``: an async generator per
    # request costs more than a small body's one message.
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if request.scope.get(TIMED_OUT):
                raise RequestTimeoutError(
                    "The request body did not arrive in time (server.body_timeout_s)."
                )
            raise ClientDisconnect
        if message["type"] != "http.request":
            continue
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(
        f"The request body is {size} bytes or more; the limit is {limit} bytes "
        "(server.max_body_bytes).",
        # Stop here: the rest of the body is not read, so the connection cannot be reused.
        headers={"connection": "close"},
    )
