"""A request body reaches the application byte for byte, however it is cut on the wire,
through the gateway's own HTTP protocol and a real socket."""

from __future__ import annotations

import hashlib
import os
import socket
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.servers import serve


async def _digest(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(f"{len(body)} {hashlib.sha256(body).hexdigest()}")


def _post_in_pieces(port: int, body: bytes, pieces: list[int], pause: float) -> str:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nhost: t\r\ncontent-type: application/octet-stream\r\n"
            b"content-length: %d\r\n\r\n" % len(body)
        )
        at = 0
        for size in pieces:
            sock.sendall(body[at : at + size])
            at += size
            time.sleep(pause)
        sock.sendall(body[at:])
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.split(b"\r\n\r\n", 1)[1]:
            answer += sock.recv(65536)
    return answer.split(b"\r\n\r\n", 1)[1].decode()


def test_a_body_in_pieces_of_every_size_arrives_whole() -> None:
    app = Starlette(routes=[Route("/", _digest, methods=["POST"])])
    body = os.urandom(3_000_000)
    expected = f"{len(body)} {hashlib.sha256(body).hexdigest()}"
    with serve(app) as url:
        port = int(url.rsplit(":", 1)[1])
        # One write (chunks as large as the socket gives), many tiny ones that pile up
        # before the application reads, and a mix with pauses between them.
        assert _post_in_pieces(port, body, [], 0) == expected
        assert _post_in_pieces(port, body, [1] * 200 + [7] * 50, 0) == expected
        assert _post_in_pieces(port, body, [10, 100_000, 3, 500_000, 1], 0.01) == expected
