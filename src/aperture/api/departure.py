"""Work that stops the moment its client leaves, or the gateway stops.

A non-streaming call spends most of its life waiting for the provider, with nothing to
send; without a watch on ``receive`` the gateway would learn that the client left only
when it tried to answer, having paid for the whole call.
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextlib import nullcontext
from typing import TypeVar

import anyio
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from aperture.api.drain import Drain

T = TypeVar("T")

__all__ = ["unless_departed"]


async def unless_departed(receive: Receive, drain: Drain | None, work: Awaitable[T]) -> T:
    """``work``'s result, or its cancellation when the client disconnects or the drain is
    cut. Call it once the body is read: ``receive`` then says only ``http.disconnect``.

    A result that is ready wins over a departure noticed at the same time: what it holds
    (an open stream) is then closed by its own response, which sees the disconnect too.

    Raises:
        ClientDisconnect: the client went away first.
        ShuttingDownError: the drain was cut first.
        Exception: whatever ``work`` raised.
    """
    outcome: list[T] = []
    failure: list[Exception] = []
    with drain.cancelled_on_cut() if drain is not None else nullcontext() as scope:
        async with anyio.create_task_group() as group:

            async def watch_client() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch_client)
            try:
                outcome.append(await work)
            except Exception as error:  # raised after the group, not wrapped in one
                failure.append(error)
            group.cancel_scope.cancel()
    if outcome:
        return outcome[0]
    if failure:
        raise failure[0]
    if scope is not None and scope.cancel_called:
        assert drain is not None
        raise drain.refusal()
    raise ClientDisconnect
