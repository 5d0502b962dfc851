"""A stream's close runs once, however the response ends: even when its body never started
(whose own ``finally`` would then never run, leaving the upstream call and the budget hold)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import anyio
import pytest
from starlette.types import Message

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
