"""Real HTTP servers for tests: uvicorn on a loopback port, in a background thread, with
the connection protocol and limits ``aperture serve`` uses (``serving.server_config``)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from aperture.serving import server_config
from aperture.settings import ServerSettings

_DEFAULTS = ServerSettings()


def reserve_port() -> socket.socket:
    """A bound loopback socket, so an app can be told its port before it serves."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve(
    app: ASGIApp, sock: socket.socket | None = None, *, server: ServerSettings = _DEFAULTS
) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and yield its base URL until the block ends."""
    sock = sock or reserve_port()
    port = sock.getsockname()[1]
    running = uvicorn.Server(server_config(app, server, port=port, loop="asyncio"))
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        running.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def serve_together(
    *apps: ASGIApp, server: ServerSettings = _DEFAULTS, loop: str = "asyncio"
) -> Iterator[list[str]]:
    """Serve several apps in one thread and one event loop, as the CLI serves the public
    and admin APIs (they share services bound to that loop), and yield their base URLs.

    ``loop="uvloop"`` runs them on uvloop, as ``aperture serve`` does in production."""
    import asyncio

    socks = [reserve_port() for _ in apps]
    servers = [
        uvicorn.Server(
            server_config(
                app,
                server,
                port=sock.getsockname()[1],
                lifespan="on" if i == 0 else "off",
                loop=loop,
            )
        )
        for i, (app, sock) in enumerate(zip(apps, socks, strict=True))
    ]

    async def run_all() -> None:
        await asyncio.gather(*(s.serve(sockets=[k]) for s, k in zip(servers, socks, strict=True)))

    def run() -> None:
        if loop == "uvloop":
            import uvloop

            uvloop.run(run_all())
        else:
            asyncio.run(run_all())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not all(s.started for s in servers):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test servers did not start")
        time.sleep(0.01)
    try:
        yield [f"http://127.0.0.1:{k.getsockname()[1]}" for k in socks]
    finally:
        for server_ in servers:
            server_.should_exit = True
        thread.join(timeout=10)
        for sock in socks:
            sock.close()
