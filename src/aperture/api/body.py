"""Read a request body with a hard cap, before anything parses it."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from aperture.errors import RequestTooLargeError

__all__ = ["ClientDisconnect", "read_body"]


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing anything over ``limit`` bytes as early as possible.

    A declared Content-Length over the cap is refused before reading; a chunked body is
    counted as it arrives, so an unbounded upload never sits in memory.

    Raises:
        RequestTooLargeError: the body is over ``limit``.
        ClientDisconnect: the client went away before sending it all.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(size: int, limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(
        f"The request body is {size} bytes or more; the limit is {limit} bytes "
        "(server.max_body_bytes).",
    )
