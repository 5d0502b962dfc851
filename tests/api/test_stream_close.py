"""A stream's close runs once, however the response ends: even when its body never started
(whose own ``finally`` would then never run, leaving the upstream call and the budget hold)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import anyio
import pytest
from starlette.types import Message

from aperture.api.departure import Departure
from aperture.api.streaming import SseResponse

pytestmark = pytest.mark.anyio


async def test_close_runs_when_the_client_is_gone_before_the_first_event() -> None:
    started, closed = [], []

    async def body() -> AsyncGenerator[bytes, None]:
        started.append(True)
        yield b"data: x\n\n"

    async def close() -> None:
        closed.append(True)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        raise OSError("connection reset")  # the headers cannot even be sent

    await SseResponse(body(), {}, close)({"type": "http"}, receive, send)
    assert started == [] and closed == [True]


async def test_close_runs_once_after_a_whole_stream() -> None:
    closed, sent = [], []

    async def body() -> AsyncGenerator[bytes, None]:
        yield b"data: x\n\n"

    async def close() -> None:
        closed.append(True)

    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await SseResponse(body(), {}, close)({"type": "http"}, receive, send)
    assert closed == [True]
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_a_departure_cancels_the_relay_and_close_still_runs_once() -> None:
    # With the server's departure in the scope, nothing reads ``receive``: the protocol's
    # connection_lost is what stops the relay.
    closed, sent = [], []
    departure = Departure()
    scope: dict[str, object] = {"type": "http"}
    departure.install(scope)

    async def body() -> AsyncGenerator[bytes, None]:
        yield b"data: 1\n\n"
        departure.leave()  # the client hangs up while the provider is still sending
        await anyio.sleep_forever()
        yield b"data: never\n\n"

    async def close() -> None:
        closed.append(True)

    async def receive() -> Message:
        raise AssertionError("a departure needs no watcher on receive")

    async def send(message: Message) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await SseResponse(body(), {}, close)(scope, receive, send)
    assert closed == [True]
    assert [m.get("body") for m in sent[1:]] == [b"data: 1\n\n"]


async def test_the_last_piece_ends_the_body_in_the_same_message() -> None:
    pieces = [b"data: 1\n\n", b"data: 2\n\ndata: [DONE]\n\n"]
    given: list[bytes] = []
    sent: list[Message] = []

    async def body() -> AsyncGenerator[bytes, None]:
        for piece in pieces:
            given.append(piece)
            yield piece

    async def close() -> None:
        pass

    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    response = SseResponse(body(), {}, close, last=lambda: len(given) == len(pieces))
    await response({"type": "http"}, receive, send)
    assert sent[1:] == [
        {"type": "http.response.body", "body": pieces[0], "more_body": True},
        {"type": "http.response.body", "body": pieces[1], "more_body": False},
    ]
