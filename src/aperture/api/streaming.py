"""Server-sent events to the client, cancelled the moment the client goes away."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import nullcontext, suppress

import anyio
from starlette.types import Receive, Scope, Send

from aperture.api.drain import Drain

__all__ = ["SseResponse"]


class SseResponse:
    """An ASGI response that relays ``body`` and watches for the client's disconnect.

    On disconnect the task group is cancelled, which raises inside ``body`` at its current
    await. ``close`` then runs exactly once, shielded, however the response ended (even if
    ``body`` never started, when its own ``finally`` would not run): it closes the upstream
    call and records what was used. A cut of the drain does the same, and then the client
    gets ``farewell()``, one in-band error event, as the stream's last.
    """

    def __init__(
        self,
        body: AsyncGenerator[bytes, None],
        headers: Mapping[str, str],
        close: Callable[[], Awaitable[None]] | None = None,
        *,
        drain: Drain | None = None,
        farewell: Callable[[], bytes] | None = None,
    ) -> None:
        self._body = body
        self._close = close
        self._drain = drain
        self._farewell = farewell
        self._headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        drain = self._drain
        ended = False  # stays so when the cut cancels the relay
        with drain.cancelled_on_cut() if drain is not None else nullcontext() as cut:
            ended = await self._relay(receive, send)
        if not ended and cut is not None and cut.cancel_called and self._farewell is not None:
            # OSError: the client left meanwhile; the cut has been recorded already.
            with suppress(OSError):
                await send({"type": "http.response.body", "body": self._farewell()})

    async def _relay(self, receive: Receive, send: Send) -> bool:
        """Whether the stream reached its end."""
        ended = False
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
                ended = True
            except OSError:
                pass  # the client is gone; the body's finally has already run its cleanup
            finally:
                group.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await self._body.aclose()
                    close, self._close = self._close, None
                    if close is not None:
                        await close()
        return ended
