"""One process serving the public and the admin API in one event loop (``aperture serve``,
or each of its workers)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Literal

from aperture.settings import ServerSettings, Settings

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

    from aperture.api.drain import Drain

__all__ = ["run", "serve_both", "serve_process", "server_config", "stop_budget_s"]

# After the drain's cut: time for the requests it ended to send their last event and be
# recorded.
_CUT_GRACE_S = 3.0
# uvicorn's own graceful-shutdown limit, after the drain: what still runs is cancelled.
_SHUTDOWN_BACKSTOP_S = 5

Sockets = tuple[socket.socket, socket.socket]
"""A worker's listening sockets, bound by its supervisor: (public, admin)."""


def serve_process(
    settings: Settings, sockets: Sockets | None = None, *, parent: int | None = None
) -> bool:
    """Serve both APIs until a signal; whether they both started.

    ``sockets`` and ``parent`` (the supervisor's pid) are given to a worker of several.
    """
    from aperture.app import create_apps
    from aperture.runtime import tune_allocator
    from aperture.tracing import open_tracer

    tune_allocator()
    tracer = open_tracer(os.environ)
    try:
        public, admin = create_apps(settings, tracer=tracer)
        started: list[bool] = []
        run(serve_both(public, admin, settings, sockets, parent=parent, started=started))
    finally:
        tracer.close()  # exports the spans still buffered
    return bool(started) and all(started)


async def serve_both(
    public: ASGIApp,
    admin: ASGIApp,
    settings: Settings,
    sockets: Sockets | None = None,
    *,
    parent: int | None = None,
    started: list[bool] | None = None,
) -> None:
    """Both APIs in one event loop; a signal stops both, and so does either one stopping (a
    failed start). A worker (``parent`` given) stops on SIGTERM alone and when its parent
    dies. ``started`` receives whether each server started."""
    import anyio

    servers = _Servers(public, admin, settings)
    async with anyio.create_task_group() as group:
        group.start_soon(servers.stop_on_signal, parent is not None)
        if parent is not None:
            group.start_soon(servers.stop_when_orphaned, parent)
        await servers.serve(sockets)
        group.cancel_scope.cancel()
    if started is not None:
        started.extend(each.started for each in servers.servers)


def stop_budget_s(server: ServerSettings) -> float:
    """The longest a process takes to stop after SIGTERM: its drain, the cut's grace and
    uvicorn's backstop, plus the lifespan's shutdown. A supervisor waits this long."""
    return server.drain_timeout_s + _CUT_GRACE_S + _SHUTDOWN_BACKSTOP_S + 2


def server_config(
    app: ASGIApp,
    server: ServerSettings,
    *,
    port: int,
    lifespan: Literal["on", "off"] = "on",
    loop: Literal["auto", "asyncio"] = "auto",
    drain: Drain | None = None,
) -> uvicorn.Config:
    """How uvicorn serves ``app``: ``aperture serve`` and the tests' servers alike, so the
    tests exercise the same connection protocol and its deadlines."""
    import uvicorn

    from aperture.api.drain import Drain, DrainMiddleware
    from aperture.protocol import deadline_protocol

    return uvicorn.Config(
        DrainMiddleware(app, drain or Drain()),
        host=server.host,
        port=port,
        lifespan=lifespan,
        loop=loop,
        http=deadline_protocol(server),
        access_log=False,
        # Nothing reads the client's address, so X-Forwarded-* is neither trusted nor
        # parsed; and the answer does not name the server software.
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        # A backstop only: the drain (``_Servers.drain_then_stop``) has already ended what
        # was in flight when uvicorn is told to stop.
        timeout_graceful_shutdown=_SHUTDOWN_BACKSTOP_S,
    )


class _Servers:
    def __init__(self, public: ASGIApp, admin: ASGIApp, settings: Settings) -> None:
        import uvicorn

        from aperture.api.drain import Drain
        from aperture.runtime import freeze_heap

        both = self

        class _Server(uvicorn.Server):
            # One handler for both servers (``stop_on_signal``) instead of each its own.
            def capture_signals(self) -> contextlib.nullcontext[None]:  # type: ignore[override]
                return contextlib.nullcontext()

            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                # What startup built lives as long as the process; once, when the last of
                # the two is up: each full collection costs the cold start ~30 ms.
                if all(each.started for each in both.servers):
                    freeze_heap()

        server = settings.server
        self.drain = Drain()
        self.drain_timeout_s = server.drain_timeout_s
        self.servers: Sequence[uvicorn.Server] = (
            _Server(server_config(public, server, port=server.port, drain=self.drain)),
            _Server(
                server_config(
                    admin, server, port=server.admin_port, lifespan="off", drain=self.drain
                )
            ),
        )

    async def serve(self, sockets: Sockets | None) -> None:
        import anyio

        async with anyio.create_task_group() as both:
            for each, sock in zip(self.servers, sockets or (None, None), strict=True):
                both.start_soon(self._serve_one, each, sock)

    async def _serve_one(self, server: uvicorn.Server, sock: socket.socket | None) -> None:
        try:
            # uvicorn exits when it cannot start (the lifespan failed, the port is taken),
            # having logged why; ``started`` then stays False.
            with contextlib.suppress(SystemExit):
                await server.serve(sockets=[sock] if sock is not None else None)
        finally:
            self.stop()

    def stop(self) -> None:
        for each in self.servers:
            each.should_exit = True

    async def drain_then_stop(self) -> None:
        """Readiness false and new chat requests refused at once; the requests in flight
        run on for up to ``server.drain_timeout_s``, then what is left is cut (and
        recorded), and the servers stop."""
        import anyio

        self.drain.start()
        with anyio.move_on_after(self.drain_timeout_s):
            await self.drain.wait_idle()
        if self.drain.active:
            self.drain.cut()
            with anyio.move_on_after(_CUT_GRACE_S):
                await self.drain.wait_idle()
        self.stop()

    async def stop_on_signal(self, worker: bool) -> None:
        import anyio

        # A worker leaves SIGINT to its supervisor. The receiver stays open while the
        # servers drain, so a repeated signal cannot cut the graceful stop short.
        signals = (signal.SIGTERM,) if worker else (signal.SIGINT, signal.SIGTERM)
        async with anyio.create_task_group() as group:
            with anyio.open_signal_receiver(*signals) as received:
                async for _ in received:
                    if not self.drain.draining:
                        group.start_soon(self.drain_then_stop)

    async def stop_when_orphaned(self, parent: int) -> None:
        import anyio

        # A supervisor killed outright (SIGKILL) cannot stop its workers: they notice.
        while True:
            await anyio.sleep(1)
            if os.getppid() != parent:
                if not self.drain.draining:
                    await self.drain_then_stop()
                return


def run(main: Coroutine[Any, Any, None]) -> None:
    """``main`` on uvloop where it is installed, else on asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
