"""Work that stops the moment its client leaves, or the gateway stops.

A non-streaming call spends most of its life waiting for the provider, with nothing to
send; without a watch on ``receive`` the gateway would learn that the client left only
when it tried to answer, having paid for the whole call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from typing import TypeVar

import anyio
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

from aperture.api.drain import Drain

T = TypeVar("T")

__all__ = ["Departure", "unless_departed"]

_SCOPE_KEY = "aperture.departure"


class Departure:
    """A connection's end, told by the server's protocol (``protocol.py``) the moment it is
    lost, so waiting for it costs no task: a watcher task per request, blocked in
    ``receive``, was a tenth of the gateway's own work on a small request."""

    def __init__(self) -> None:
        self.left = False
        self._callback: Callable[[], object] | None = None

    @staticmethod
    def of(scope: Scope) -> Departure | None:
        """The departure the server put in the scope, if it is ours."""
        departure: Departure | None = scope.get(_SCOPE_KEY)
        return departure

    def install(self, scope: Scope) -> None:
        scope[_SCOPE_KEY] = self

    def leave(self) -> None:
        """The connection is gone: call what waits for it, once."""
        self.left = True
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()

    def watch(self, callback: Callable[[], object] | None) -> None:
        """Call ``callback`` when the client leaves (at once if it has); None stops watching."""
        self._callback = callback
        if callback is not None and self.left:
            self.leave()


async def unless_departed(
    receive: Receive, drain: Drain | None, work: Awaitable[T], departure: Departure | None = None
) -> T:
    """``work``'s result, or its cancellation when the client disconnects or the drain is
    cut. Call it once the body is read: ``receive`` then says only ``http.disconnect``.
    With the server's ``departure`` (``Departure.of(scope)``) no watcher task is needed.

    A result that is ready wins over a departure noticed at the same time: what it holds
    (an open stream) is then closed by its own response, which sees the disconnect too.

    Raises:
        ClientDisconnect: the client went away first.
        ShuttingDownError: the drain was cut first.
        Exception: whatever ``work`` raised.
    """
    if departure is not None:
        return await _unless_left(departure, drain, work)
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


async def _unless_left(departure: Departure, drain: Drain | None, work: Awaitable[T]) -> T:
    # One scope for both ways out: each costs a scope to make on every request.
    with anyio.CancelScope() as scope:
        if drain is not None:
            drain.cancel_on_cut(scope)
        departure.watch(scope.cancel)
        try:
            return await work
        finally:
            departure.watch(None)
            if drain is not None:
                drain.forget(scope)
    if drain is not None and drain.cutting:
        raise drain.refusal()
    raise ClientDisconnect
