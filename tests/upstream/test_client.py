"""The provider client's contract at its own boundary, over real sockets on loopback.

These are the behaviours a replacement HTTP client must keep (two Rust-backed clients were
tried against them, see issue 19): a cancelled call closes its upstream connection at once,
before the answer's head as well as after; a cancel scope's cancellation comes back out as
the scope's own, so ``anyio.fail_after`` around a call stays a timeout; the environment's
proxy settings are not followed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from aperture.upstream import Timeouts, UpstreamClient, UpstreamRequest

pytestmark = pytest.mark.anyio

# Long enough that only a closed connection, never a timeout, ends the tests' calls.
PATIENT = Timeouts(connect_s=5, total_s=120, idle_s=120)
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Upstream:
    """Counts what it saw: a request's head arriving, and its connection going away."""

    def __init__(self, answer: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> None:
        self.answer = answer
        self.seen = asyncio.Event()
        self.gone = asyncio.Event()
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.seen.set()
        await self.answer(writer)
        await reader.read()  # until the client closes its end
        self.gone.set()
        writer.close()


@asynccontextmanager
async def upstream(
    answer: Callable[[asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[Upstream]:
    origin = Upstream(answer)
    server = await asyncio.start_server(origin.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    origin.url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        yield origin
    finally:
        server.close()


async def never(writer: asyncio.StreamWriter) -> None:
    """A provider still thinking: no status line ever comes."""


async def head_then_nothing(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n")
    await writer.drain()


async def answers(writer: asyncio.StreamWriter) -> None:
    writer.write(ANSWER)
    await writer.drain()


def ask(url: str) -> UpstreamRequest:
    return UpstreamRequest(url, {"content-type": "application/json"}, b"{}")


async def cancelled_once_seen(origin: Upstream, call: Callable[[], Awaitable[object]]) -> bool:
    """Run ``call``, cancel it once the upstream has its request; True if the scope caught it."""
    async with anyio.create_task_group() as group:
        scope = anyio.CancelScope()

        async def run() -> None:
            with scope:
                await call()

        group.start_soon(run)
        await origin.seen.wait()
        await anyio.sleep(0.05)  # let the call settle into waiting for the answer
        scope.cancel()
    return scope.cancelled_caught


async def test_a_call_cancelled_before_the_answer_closes_the_upstream_connection() -> None:
    client = UpstreamClient.create()
    try:
        async with upstream(never) as origin:
            caught = await cancelled_once_seen(
                origin, lambda: client.send(ask(origin.url), PATIENT, provider="p")
            )
            # The provider must see the caller leave, not generate (and bill) a full answer.
            with anyio.fail_after(10):
                await origin.gone.wait()
    finally:
        await client.close()
    assert caught, "the cancel scope's cancellation came back as someone else's"


async def test_a_stream_cancelled_before_its_head_closes_the_upstream_connection() -> None:
    client = UpstreamClient.create()
    try:
        async with upstream(never) as origin:
            caught = await cancelled_once_seen(
                origin, lambda: client.open_stream(ask(origin.url), PATIENT, provider="p")
            )
            with anyio.fail_after(10):
                await origin.gone.wait()
    finally:
        await client.close()
    assert caught


async def test_a_stream_closed_mid_body_closes_the_upstream_connection() -> None:
    client = UpstreamClient.create()
    try:
        async with upstream(head_then_nothing) as origin:
            stream = await client.open_stream(ask(origin.url), PATIENT, provider="p")
            async for chunk in stream.chunks():
                assert chunk.startswith(b"data: 1")
                break
            await stream.aclose()
            with anyio.fail_after(10):
                await origin.gone.wait()
    finally:
        await client.close()


async def test_the_environments_proxy_settings_are_not_followed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing listens on port 9: a client that took these would fail to connect.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    client = UpstreamClient.create()
    try:
        async with upstream(answers) as origin:
            response = await client.send(ask(origin.url), PATIENT, provider="p")
    finally:
        await client.close()
    assert response.status == 200
    assert response.body == b"{}"
