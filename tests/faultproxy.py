"""A fault-injecting TCP proxy for tests: put it between the gateway and a real server.

    client ──► FaultProxy (127.0.0.1:<port>) ──► upstream (PostgreSQL, Redis, ...)

It forwards bytes both ways until told otherwise, from any thread (its own event loop runs
in a background thread, so a synchronous test and an async one drive it alike):

    reset()         every open connection is closed with a TCP RST, on both sides
    blackhole()     connections stay open (new ones are accepted) but nothing moves either
                    way, like a network partition: what was sent is delivered on heal()
    drop_replies()  requests reach the server, its replies are thrown away: the command ran
                    but the client never hears so (connections that lost a reply are reset
                    on heal(), since their byte streams no longer line up)
    refuse()        the listening socket closes: new connections are refused
    down()          reset() and refuse() together: the server went away
    heal()          back to forwarding, listening again on the same port

Usage::

    with FaultProxy("127.0.0.1", 6379) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/15"
        ...
        proxy.reset()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

__all__ = ["FaultProxy", "proxied_url"]

Mode = Literal["forward", "blackhole", "drop_replies"]
T = TypeVar("T")

_CHUNK = 65536


class _Link:
    """One proxied connection: the client's side, the server's side, and its pumps."""

    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client = client
        self.server = server
        self.tasks: list[asyncio.Task[None]] = []
        self.dropped = False  # a reply was thrown away: the streams no longer line up

    def abort(self) -> None:
        for writer in (self.client, self.server):
            _rst(writer)
        for task in self.tasks:
            task.cancel()


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            # Linger on, timeout zero: close() sends RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._mode: Mode = "forward"
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._moving: asyncio.Event | None = None  # set while bytes may flow
        self.port = 0
        self.connections = 0  # accepted since start, for tests that want to see reconnects

    # --- the test's side ----------------------------------------------------------------

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start)
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    @property
    def mode(self) -> Mode:
        return self._mode

    def reset(self) -> None:
        self._call(self._reset)

    def blackhole(self) -> None:
        self._call(self._set_mode, "blackhole")

    def drop_replies(self) -> None:
        self._call(self._set_mode, "drop_replies")

    def refuse(self) -> None:
        self._call(self._refuse)

    def down(self) -> None:
        self._call(self._refuse)
        self._call(self._reset)

    def heal(self) -> None:
        self._call(self._heal)

    def _call(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        return asyncio.run_coroutine_threadsafe(fn(*args), self._loop).result(timeout=10)

    # --- the proxy's loop ----------------------------------------------------------------

    async def _start(self) -> None:
        self._moving = asyncio.Event()
        self._moving.set()
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._refuse()
        await self._reset()
        # Handlers still waiting (a blackholed accept) end with the proxy, not after it.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _reset(self) -> None:
        for link in list(self._links):
            link.abort()
        self._links.clear()

    async def _refuse(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _set_mode(self, mode: Mode) -> None:
        assert self._moving is not None
        self._mode = mode
        if mode == "blackhole":
            self._moving.clear()
        else:
            self._moving.set()

    async def _heal(self) -> None:
        for link in [link for link in self._links if link.dropped]:
            link.abort()
            self._links.discard(link)
        await self._set_mode("forward")
        if self._server is None:
            await self._listen()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        assert self._moving is not None
        await self._moving.wait()  # blackholed: accepted, never connected onward
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            _rst(writer)
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        try:
            async with asyncio.TaskGroup() as pumps:
                link.tasks = [
                    pumps.create_task(self._pump(link, reader, up_writer, replies=False)),
                    pumps.create_task(self._pump(link, up_reader, writer, replies=True)),
                ]
        finally:
            self._links.discard(link)

    async def _pump(
        self,
        link: _Link,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        *,
        replies: bool,
    ) -> None:
        assert self._moving is not None
        try:
            while True:
                await self._moving.wait()
                data = await source.read(_CHUNK)
                if not data:
                    break
                await self._moving.wait()  # a partition holds what is in flight
                if replies and self._mode == "drop_replies":
                    link.dropped = True
                    continue
                sink.write(data)
                await sink.drain()
        except (OSError, RuntimeError):
            link.abort()
            return
        # One side closed cleanly: pass the FIN on, then close when both are done.
        with contextlib.suppress(OSError, RuntimeError):
            if sink.can_write_eof():
                sink.write_eof()
            else:
                sink.close()
        if all(task.done() or task is asyncio.current_task() for task in link.tasks):
            for writer in (link.client, link.server):
                writer.close()


def proxied_url(url: str, proxy: FaultProxy) -> str:
    """``url`` with its host and port replaced by the proxy's (user, path and query kept)."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{proxy.port}" if user else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))
