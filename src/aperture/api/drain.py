"""A process's stop, as its requests see it.

On SIGTERM the server ``start``s the drain: readiness turns false and new chat requests are
refused with 503 and ``Retry-After``, while the requests in flight run on. Once they are
done, or ``server.drain_timeout_s`` has passed, it ``cut``s what is left: a stream ends
with one in-band error, a call still waiting for its provider is answered 503. Every one
of them is recorded (audit, ledger, budget) like any other ending.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from aperture.errors import ShuttingDownError

__all__ = ["Drain", "DrainMiddleware"]

_SCOPE_KEY = "aperture.drain"
# Long enough for a load balancer to take this instance out of rotation.
_RETRY_AFTER_S = 1


class Drain:
    def __init__(self) -> None:
        self.draining = False
        self.active = 0  # HTTP requests in flight, on every server of the process
        self._cut = False
        self._on_cut: set[anyio.CancelScope] = set()
        self._idle: anyio.Event | None = None

    @staticmethod
    def of(scope: Scope) -> Drain | None:
        """The drain of the server that received this request."""
        drain: Drain | None = scope.get(_SCOPE_KEY)
        return drain

    def start(self) -> None:
        self.draining = True

    def cut(self) -> None:
        self._cut = True
        for scope in list(self._on_cut):
            scope.cancel()

    @contextmanager
    def cancelled_on_cut(self) -> Iterator[anyio.CancelScope]:
        """A cancel scope that the cut cancels (at once, if it has already happened)."""
        with anyio.CancelScope() as scope:
            self.cancel_on_cut(scope)
            try:
                yield scope
            finally:
                self.forget(scope)

    def cancel_on_cut(self, scope: anyio.CancelScope) -> None:
        """Have the cut cancel ``scope`` (at once, if it has already happened) until
        ``forget``; for a scope that is cancelled for other reasons too."""
        if self.cutting:
            scope.cancel()
        self._on_cut.add(scope)

    def forget(self, scope: anyio.CancelScope) -> None:
        self._on_cut.discard(scope)

    @property
    def cutting(self) -> bool:
        return self._cut

    async def wait_idle(self) -> None:
        """Until no counted request is in flight."""
        if self.active:
            self._idle = anyio.Event()
            await self._idle.wait()

    def enter(self) -> None:
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
        if not self.active and self._idle is not None:
            self._idle.set()

    def refusal(self) -> ShuttingDownError:
        return ShuttingDownError(
            "The gateway is shutting down; retry the request.",
            # A new connection reaches an instance that is not stopping.
            headers={"retry-after": str(_RETRY_AFTER_S), "connection": "close"},
        )


class DrainMiddleware:
    """Counts the requests in flight and shows them the drain (``Drain.of``).

    Installed by the server around the whole application, so the count includes every
    endpoint and lasts until the last byte and the last background task; requests that
    arrive once the drain has started are not counted.
    """

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[_SCOPE_KEY] = self.drain
        if self.drain.draining:
            # Not waited for: refused at once (chat), or instant (probes, listings). Were
            # they counted, steady traffic would hold the drain open to its timeout.
            await self.app(scope, receive, send)
            return
        self.drain.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.leave()
