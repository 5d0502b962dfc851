"""Server-sent events to the client, cancelled the moment the client goes away."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

import anyio
from starlette.types import Receive, Scope, Send

__all__ = ["SseResponse"]


class SseResponse:
    """An ASGI response that relays ``body`` and watches for the client's disconnect.

    On disconnect the task group is cancelled, which raises inside ``body`` at its current
    await. ``close`` then runs exactly once, shielded, however the response ended (even if
    ``body`` never started, when its own ``finally`` would not run): it closes the upstream
    call and records what was used.
    """

    def __init__(
        self,
        body: AsyncGenerator[bytes, None],
        headers: Mapping[str, str],
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._body = body
        self._close = close
        self._headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch_disconnect)
            try:
                await send({"type": "http.response.start", "status": 200, "headers": self._headers})
                async for chunk in self._body:
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass  # the client is gone; the body's finally has already run its cleanup
            finally:
                group.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await self._body.aclose()
                    close, self._close = self._close, None
                    if close is not None:
                        await close()
