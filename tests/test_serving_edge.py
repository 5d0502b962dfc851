"""The HTTP edge under slow, idle and departing clients, over real sockets.

The gateway runs with one-second deadlines; every assertion on time is a generous bound
that proves "bounded", never a measure of speed.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from aperture.app import create_app
from aperture.emulator import create_emulator_app
from aperture.settings import parse_settings
from tests.servers import serve

CONFIG = """
server: {max_body_bytes: 100000, header_timeout_s: 1, body_timeout_s: 1,
         write_idle_timeout_s: 1}
storage: {database: "sqlite:///${STATE}/aperture.db", spool_dir: "${STATE}/spool"}
providers:
  - {name: emu, kind: openai, base_url: "${EMU}/openai/v1", api_key: k}
  - {name: flood, kind: openai, base_url: "${FLOOD}/v1"}
  - {name: hang, kind: openai, base_url: "${HANG}/v1"}
models:
  - {name: demo-text, provider: emu, upstream_model: emulator-text}
  - {name: flood, provider: flood}
  - {name: hang, provider: hang}
"""


class Flood:
    """An OpenAI-style stream of 4 KiB chunks, as fast as it can, until it is closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    async def _chat(self, request: Request) -> StreamingResponse:
        await request.body()
        chunk = (
            'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"f",'
            '"choices":[{"index":0,"delta":{"content":"' + "x" * 4096 + '"},'
            '"finish_reason":null}]}\n\n'
        )

        async def chunks():  # type: ignore[no-untyped-def]
            try:
                for _ in range(1_000_000):
                    yield chunk
                    await anyio.lowlevel.checkpoint()
            finally:
                self.closed.set()

        return StreamingResponse(chunks(), media_type="text/event-stream")


class Hang:
    """A non-streaming provider that takes ten seconds, unless its caller hangs up first."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.gone = threading.Event()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    async def _chat(self, request: Request) -> Response:
        await request.body()
        self.started.set()
        with anyio.move_on_after(10):
            while (await request.receive())["type"] != "http.disconnect":
                pass
            self.gone.set()
            return Response(status_code=499)
        return JSONResponse({"error": "the gateway kept waiting"})


class Edge:
    def __init__(self, url: str, database: Path, flood: Flood, hang: Hang) -> None:
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self.database = database
        self.flood = flood
        self.hang = hang

    def connect(self, rcvbuf: int | None = None) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.connect(("127.0.0.1", self.port))
        return sock

    def audit(self, model: str, timeout: float = 10) -> list[dict[str, Any]]:
        """The audit events for ``model``, once at least one is stored."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with sqlite3.connect(self.database, timeout=10) as db:
                rows = db.execute(
                    "SELECT body FROM audit_events WHERE model = ?", (model,)
                ).fetchall()
            if rows:
                return [json.loads(body) for (body,) in rows]
            time.sleep(0.1)
        raise AssertionError(f"no audit event for {model}")


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    state = tmp_path_factory.mktemp("edge")
    flood, hang = Flood(), Hang()
    with (
        serve(create_emulator_app()) as emulator,
        serve(flood.app) as flood_url,
        serve(hang.app) as hang_url,
    ):
        env = {"EMU": emulator, "FLOOD": flood_url, "HANG": hang_url, "STATE": str(state)}
        settings = parse_settings(CONFIG, env)
        with serve(create_app(settings), server=settings.server) as url:
            yield Edge(url, state / "aperture.db", flood, hang)


def _trickle(sock: socket.socket, prefix: bytes, within: float) -> tuple[bytes, float]:
    """Send ``prefix``, then a byte every 0.1 s, until the server closes the connection;
    what it answered, and after how long. Fails if it is still open after ``within``."""
    started = time.monotonic()
    sock.sendall(prefix)
    sock.settimeout(0.1)
    answer = b""
    while time.monotonic() - started < within:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            pass
        except ConnectionResetError:
            return answer, time.monotonic() - started
        else:
            if not data:
                return answer, time.monotonic() - started
            answer += data
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.send(b"x")  # if closed, the next recv says so
    raise AssertionError(f"the connection was still open after {within} s")


def test_a_client_trickling_its_headers_gets_408_and_is_closed(edge: Edge) -> None:
    with edge.connect() as sock:
        answer, _ = _trickle(sock, b"POST /v1/chat/completions HTTP/1.1\r\nX-Slow: ", within=6)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in answer.lower()


def test_a_connection_that_sends_nothing_is_closed(edge: Edge) -> None:
    with edge.connect() as sock:
        sock.settimeout(6)
        assert sock.recv(1024) == b""  # closed without a word: nothing was asked


def test_a_client_trickling_its_body_gets_408_and_is_recorded(edge: Edge) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5000\r\n\r\n"
    )
    with edge.connect() as sock:
        answer, _ = _trickle(sock, head + b'{"model": "demo-text", ', within=6)
    assert answer.startswith(b"HTTP/1.1 408 ")
    # The endpoint saw it as a timeout (not a client's disconnect) and recorded it.
    metrics = httpx.get(f"{edge.url}/metrics", timeout=10).text
    assert 'status="408"' in metrics


def test_300_slow_clients_do_not_hold_the_gateway(edge: Edge) -> None:
    selector = selectors.DefaultSelector()
    slow = []
    for _ in range(300):
        sock = edge.connect()
        sock.setblocking(False)
        sock.send(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        selector.register(sock, selectors.EVENT_READ)
        slow.append(sock)
    try:
        body = {"model": "demo-text", "messages": [{"role": "user", "content": "still here?"}]}
        with httpx.Client(base_url=edge.url, timeout=10) as client:
            for _ in range(10):
                assert client.post("/v1/chat/completions", json=body).status_code == 200
        # Every slow one is closed by its deadline (1 s), however it keeps trickling.
        open_ = set(slow)
        deadline = time.monotonic() + 10
        while open_ and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    selector.unregister(sock)
                    open_.discard(sock)
            for sock in open_:
                with contextlib.suppress(OSError):
                    sock.send(b"x")  # if closed, its EOF is next
        assert not open_, f"{len(open_)} slow connections still open"
    finally:
        selector.close()
        for sock in slow:
            sock.close()


def test_an_oversized_body_is_refused_and_not_read(edge: Edge) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10000000000\r\n\r\n"
    )
    _refused_without_reading(edge, head)


def test_an_oversized_chunked_body_is_refused_and_not_read(edge: Edge) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    _refused_without_reading(edge, head, chunked=True)


def test_a_body_answered_before_it_is_read_is_not_read_to_its_end(edge: Edge) -> None:
    # A 405 is sent without reading the body; the server stops reading then, rather than
    # swallowing the rest on a connection it keeps alive.
    head = b"POST /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n"
    _refused_without_reading(edge, head, status=b"405")


def _refused_without_reading(
    edge: Edge, head: bytes, *, chunked: bool = False, status: bytes = b"413"
) -> None:
    piece = b"x" * 65536
    if chunked:
        piece = b"%x\r\n%s\r\n" % (len(piece), piece)
    sent = 0
    answer = b""
    with edge.connect() as sock:
        sock.sendall(head)
        sock.settimeout(0.05)
        # Loopback buffers hold a few megabytes; a gateway that kept reading would take
        # all 256 MB.
        while sent < 256 * 1024 * 1024:
            try:
                sent += sock.send(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
        else:
            raise AssertionError("the gateway read 256 MB of a body it had refused")
    if answer:  # (a reset can overtake the answer)
        assert answer.startswith(b"HTTP/1.1 " + status)
        if status == b"413":
            assert b"connection: close" in answer.lower()


def test_the_open_access_demo_answers_a_normal_request(edge: Edge) -> None:
    # The deadlines do not trouble a client that sends at a normal pace.
    body = {"model": "demo-text", "messages": [{"role": "user", "content": "Hi"}]}
    response = httpx.post(f"{edge.url}/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 200
    assert response.headers.get("connection") != "close"


def test_a_client_that_stops_reading_a_stream_is_cut_and_recorded(edge: Edge) -> None:
    request = json.dumps(
        {"model": "flood", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    ).encode()
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(request)
    )
    with edge.connect(rcvbuf=4096) as sock:
        sock.sendall(head + request)
        # ...and never reads. Without the write-idle timeout the stream would wait forever.
        assert edge.flood.closed.wait(timeout=15), "the upstream stream was not cancelled"
    (event,) = edge.audit("flood")
    assert event["status"] == 499
    assert event["error_code"] == "client_disconnected"


def test_a_client_leaving_a_non_streaming_call_cancels_the_provider_call(edge: Edge) -> None:
    request = json.dumps({"model": "hang", "messages": [{"role": "user", "content": "x"}]})
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(request)
    )
    with edge.connect() as sock:
        sock.sendall(head + request.encode())
        assert edge.hang.started.wait(timeout=10)
    # The provider would answer after 10 s; the gateway must hang up as soon as we left.
    assert edge.hang.gone.wait(timeout=3), "the provider call was not cancelled"
    (event,) = edge.audit("hang")
    assert event["status"] == 499
    assert event["error_code"] == "client_disconnected"
