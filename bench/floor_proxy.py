"""A bare pass-through proxy: the floor of one HTTP server and one HTTP client, no gateway.

    bench/.venv-floors/bin/python bench/floor_proxy.py --server uvicorn --client aiohttp \\
        --port 18300 --upstream http://127.0.0.1:18090     # bench/run runs all four

It answers ``POST /v1/chat/completions`` (and ``GET /healthz``) by reading the body,
sending it unchanged to ``<upstream>/v1/chat/completions`` on a pooled keep-alive
connection, and answering the upstream's status and bytes as ``application/json``:
what any gateway must do at least, so ``gateway req/s / floor req/s`` says how much of the
stack's ceiling the gateway's own work leaves. With the ``aiohttp`` client, a request whose
body asks for ``"stream":true`` is relayed as it comes, chunk by chunk (the floor of scenario
(c), ``bench/stream_probe.py --floor``).

Servers: ``uvicorn`` (httptools, uvloop, Aperture's), ``granian`` (Rust, ASGI interface).
Clients: ``aiohttp`` (Aperture's), ``pyreqwest`` (Rust, reqwest/hyper).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Forward = Callable[[bytes], Awaitable[tuple[int, bytes]]]
Relay = Callable[[bytes, Send], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]


def _aiohttp_client(
    upstream: str,
) -> tuple[Callable[[], Awaitable[None]], Forward, Relay | None]:
    import aiohttp

    url = f"{upstream}/v1/chat/completions"
    session: list[aiohttp.ClientSession] = []

    async def start() -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=300)
        session.append(aiohttp.ClientSession(connector=connector))

    async def forward(body: bytes) -> tuple[int, bytes]:
        async with session[0].post(url, data=body, headers=_JSON_HEADERS) as response:
            return response.status, await response.read()

    async def relay(body: bytes, send: Send) -> None:
        async with session[0].post(url, data=body, headers=_JSON_HEADERS) as response:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return start, forward, relay


def _pyreqwest_client(
    upstream: str,
) -> tuple[Callable[[], Awaitable[None]], Forward, Relay | None]:
    from pyreqwest.client import ClientBuilder

    url = f"{upstream}/v1/chat/completions"
    client: list[Any] = []

    async def start() -> None:
        client.append(ClientBuilder().build())

    async def forward(body: bytes) -> tuple[int, bytes]:
        request = client[0].post(url).headers(_JSON_HEADERS).body_bytes(body).build()
        response = await request.send()
        return response.status, bytes(await response.bytes())

    return start, forward, None


_JSON_HEADERS = {"content-type": "application/json"}
_CLIENTS = {"aiohttp": _aiohttp_client, "pyreqwest": _pyreqwest_client}


def make_app(client: str, upstream: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    start, forward, relay = _CLIENTS[client](upstream)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/healthz":
            status, answer = 200, b'{"status":"ok"}'
        else:
            chunks = []
            more = True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
            if relay is not None and b'"stream":true' in body:
                await relay(body, send)
                return
            status, answer = await forward(body)
        headers = [*_JSON, (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", choices=("uvicorn", "granian"), required=True)
    parser.add_argument("--client", choices=sorted(_CLIENTS), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="http://host:port of the upstream")
    args = parser.parse_args()
    app = make_app(args.client, args.upstream)
    if args.server == "uvicorn":
        import uvicorn

        uvicorn.run(
            app,
            host="127.0.0.1",
            port=args.port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level="warning",
        )
    else:
        # Granian imports its application in its worker process, by name.
        os.environ.update(FLOOR_CLIENT=args.client, FLOOR_UPSTREAM=args.upstream)
        here = os.path.dirname(os.path.abspath(__file__))
        os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
        granian = os.path.join(os.path.dirname(sys.executable), "granian")
        argv = [granian, "--interface", "asgi", "--host", "127.0.0.1", "--port", str(args.port)]
        argv += ["--workers", "1", "--loop", "uvloop", "--no-ws", "--log-level", "warning"]
        os.execv(granian, [*argv, "--factory", "floor_proxy:granian_app"])
    return 0


def granian_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    return make_app(os.environ["FLOOR_CLIENT"], os.environ["FLOOR_UPSTREAM"])


if __name__ == "__main__":
    sys.exit(main())
