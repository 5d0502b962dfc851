"""What the connection writes: a head leaves with its first body write where one follows at
once, so a small answer, or a stream's head and first events, are one write (one wake-up of
the client)."""

from __future__ import annotations

import asyncio

import pytest

from aperture.protocol import _HeadWithBody

pytestmark = pytest.mark.anyio

SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"


class Transport:
    """What reaches the socket, write by write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def writelines(self, data: list[bytes]) -> None:
        self.writes.append(b"".join(data))

    def is_closing(self) -> bool:
        return False


def wrapped() -> tuple[_HeadWithBody, Transport]:
    transport = Transport()
    return _HeadWithBody(transport), transport  # type: ignore[arg-type]  # the writes only


async def test_a_stream_head_leaves_with_its_first_events() -> None:
    writer, transport = wrapped()
    writer.write(SSE_HEAD)
    writer.write(b"e\r\ndata: 1\n\n\r\n")
    writer.write(b"0\r\n\r\n")
    await asyncio.sleep(0)  # the head's release finds nothing left to do
    assert transport.writes == [SSE_HEAD + b"e\r\ndata: 1\n\n\r\n", b"0\r\n\r\n"]


async def test_a_stream_head_without_events_goes_out_on_the_next_loop_turn() -> None:
    writer, transport = wrapped()
    writer.write(SSE_HEAD)
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [SSE_HEAD]
    writer.write(b"e\r\ndata: 1\n\n\r\n")
    assert transport.writes == [SSE_HEAD, b"e\r\ndata: 1\n\n\r\n"]


async def test_another_chunked_head_goes_out_as_it_comes() -> None:
    writer, transport = wrapped()
    writer.write(CHUNKED_HEAD)
    assert transport.writes == [CHUNKED_HEAD]
