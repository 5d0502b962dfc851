"""The Redis connection every Redis store shares, and the one place Redis faults are handled.

    store call ──► RedisLink.guarded() ──► redis-py (one pool, the client never retries)
                        │ any fault ──► StorageError (callers decide: budgets 503, limits open)
                        ├ unanswered (timeout, refused, loading) with no other call
                        │   answered meanwhile: Redis is "down" for ``retry_s``: calls
                        │   fail at once instead of each waiting out its timeout, then one
                        │   call probes; its success ends the outage
                        └ a broken connection (reset, closed transport, EOF): every idle
                            pooled connection is dropped, so none of its dead siblings is
                            handed out again; the next calls connect afresh

Faults are recognised by class, at the boundary: redis-py's ``RedisError`` tree, ``OSError``
(which includes ``TimeoutError``), ``EOFError`` (``IncompleteReadError``), and the
``RuntimeError`` uvloop raises when a command is written to a transport the peer closed.
A reset is not an outage (a fresh connection usually works at once, so a caller may retry),
while an unanswered call is: Redis may have run the command, and the next caller would wait
as long.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aperture.storage.base import StorageError

__all__ = ["RedisLink"]

log = logging.getLogger(__name__)

# Foreign exceptions that mean "Redis or the way to it failed", never a bug of ours.
_FAULTS = (RedisError, OSError, EOFError, RuntimeError)


def _unanswered(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis did not answer (as opposed to one connection breaking)."""
    if isinstance(exc, RedisTimeoutError | TimeoutError | BusyLoadingError):
        return True
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:  # redis-py chains the socket error
        if isinstance(link, ConnectionRefusedError | TimeoutError):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


class RedisLink:
    """One Redis client and its pool, with the guard every store's call goes through.

    Stores borrow ``client``; ``close()`` belongs to whoever made the link.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        timeout_s: float = 2.0,
        retry_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (timeout_s > 0 and retry_s > 0):
            raise ValueError("timeout_s and retry_s must be positive")
        self.client = client
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._clock = clock
        self._down_until = -math.inf  # before this time, calls fail without trying
        self._down = False  # the last call that reached a verdict found Redis unanswering
        self._answered_at = -math.inf  # when a call last got an answer

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout_s: float = 2.0,
        retry_s: float = 1.0,
        max_connections: int = 50,
    ) -> RedisLink:
        # A blocking pool queues callers for a free connection; the default pool raises
        # "Too many connections" as soon as a burst of requests outnumbers it.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,  # a slow Redis is an outage to report, not to wait out
            socket_connect_timeout=timeout_s,
            # A retried increment after a lost reply would count twice: callers decide.
            retry=Retry(NoBackoff(), 0),
        )
        return cls(aioredis.Redis.from_pool(pool), timeout_s=timeout_s, retry_s=retry_s)

    @property
    def down(self) -> bool:
        """Whether Redis is currently taken to be unreachable (calls fail fast)."""
        return self._down

    @asynccontextmanager
    async def guarded(self) -> AsyncIterator[None]:
        """Run one store call: its faults become ``StorageError``, and an outage fails fast.

        Raises:
            StorageError: Redis failed, or is in an outage and was not tried.
        """
        now = started = self._clock()
        if now < self._down_until:
            raise StorageError(
                f"redis unavailable: not answering; next try in {self._down_until - now:.1f} s"
            )
        if self._down:
            # This call is the probe; the others keep failing fast until it has an answer
            # (bounded, should it never return).
            self._down_until = now + self._timeout_s + self._retry_s
        try:
            yield
        except ResponseError as exc:
            # Redis answered (a script error, OOM, READONLY...): the connection is fine.
            self._recovered()
            raise StorageError(f"redis refused: {exc}") from exc
        except _FAULTS as exc:
            await self._failed(exc, started)
            raise StorageError(f"redis failed: {type(exc).__name__}: {exc}") from exc
        else:
            self._recovered()

    def _recovered(self) -> None:
        self._answered_at = self._clock()
        if self._down:
            log.warning("redis answers again")
        self._down = False
        self._down_until = -math.inf

    async def _failed(self, exc: BaseException, started: float) -> None:
        if _unanswered(exc) and self._answered_at > started:
            # Redis answered another call while this one waited: this connection, or this
            # process's own event loop under a burst, was slow, and Redis is not down.
            # Declaring an outage here would open every rate limit for ``retry_s``.
            return
        if _unanswered(exc):
            if not self._down:
                log.error("redis is not answering; calls fail fast for %.1f s", self._retry_s)
            self._down = True
            self._down_until = self._clock() + self._retry_s
            return
        if isinstance(exc, RedisConnectionError | OSError | EOFError | RuntimeError):
            await self._drop_idle()

    async def _drop_idle(self) -> None:
        # One broken connection usually means the server restarted or a proxy cut them all:
        # its idle siblings are just as dead, and each would fail one more request.
        try:
            await self.client.connection_pool.disconnect(inuse_connections=False)
        except Exception as exc:  # closing dead sockets may fail in any way; they are gone
            log.debug("dropping idle redis connections: %s", exc)

    async def close(self) -> None:
        await self.client.aclose()
