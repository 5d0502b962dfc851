"""Server-sent events to the client, cancelled the moment the client goes away."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import suppress

import anyio
from starlette.types import Receive, Scope, Send

from aperture.api.departure import Departure
from aperture.api.drain import Drain

__all__ = ["SseResponse"]


class SseResponse:
    """An ASGI response that relays ``body`` and watches for the client's disconnect.

    On disconnect (told by the server's protocol, or seen in ``receive`` by a watcher task
    where the server tells nothing) the relay is cancelled, which raises inside ``body`` at
    its current await. ``close`` then runs exactly once, shielded, however the response
    ended (even if ``body`` never started, when its own ``finally`` would not run): it
    closes the upstream call and records what was used. A cut of the drain does the same,
    and then the client gets ``farewell()``, one in-band error event, as the stream's last.
    """

    def __init__(
        self,
        body: AsyncGenerator[bytes, None],
        headers: Mapping[str, str],
        close: Callable[[], Awaitable[None]] | None = None,
        *,
        drain: Drain | None = None,
        farewell: Callable[[], bytes] | None = None,
        last: Callable[[], bool] | None = None,
    ) -> None:
        self._body = body
        self._last = last
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
        departure = Departure.of(scope)
        ended = False  # stays so when the relay is cancelled
        # One scope for every way out (each costs a scope to make on every stream).
        with anyio.CancelScope() as stop:
            if drain is not None:
                drain.cancel_on_cut(stop)
            try:
                if departure is not None:
                    # The server's protocol tells of the disconnect: no watcher task.
                    departure.watch(stop.cancel)
                    ended = await self._relay(send)
                else:
                    ended = await self._relay_watching(receive, send)
            finally:
                if departure is not None:
                    departure.watch(None)
                if drain is not None:
                    drain.forget(stop)
        if not ended and drain is not None and drain.cutting and self._farewell is not None:
            # OSError: the client left meanwhile; the cut has been recorded already.
            with suppress(OSError):
                await send({"type": "http.response.body", "body": self._farewell()})

    async def _relay_watching(self, receive: Receive, send: Send) -> bool:
        """``_relay``, watching ``receive`` for the disconnect (a server without departures)."""
        ended = False
        async with anyio.create_task_group() as group:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch_disconnect)
            try:
                ended = await self._relay(send)
            finally:
                group.cancel_scope.cancel()
        return ended

    async def _relay(self, send: Send) -> bool:
        """Whether the stream reached its end."""
        ended = False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            last, body_ended = self._last, False
            async for chunk in self._body:
                if last is not None and last():
                    # The body's end goes in the same write as its last piece.
                    await send({"type": "http.response.body", "body": chunk, "more_body": False})
                    body_ended = True
                elif chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not body_ended:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            ended = True
        except OSError:
            pass  # the client is gone; the body's finally has already run its cleanup
        finally:
            with anyio.CancelScope(shield=True):
                await self._body.aclose()
                close, self._close = self._close, None
                if close is not None:
                    await close()
        return ended
