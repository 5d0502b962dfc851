"""Counters in Redis, shared by every gateway instance: ``redis://host:6379/0``.

Each read-modify-write is one Lua script, so it is atomic across instances, and the TTL is
set inside the same script: no cancellation between INCR and EXPIRE can leave a key that
lives forever. The client never retries a command by itself: a retried increment after a
timeout would count twice.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from aperture.storage.base import StorageError
from aperture.storage.records import Admission

__all__ = ["RedisCounters"]

# KEYS[1] counter; ARGV[1] amount; ARGV[2] limit ('' for none); ARGV[3] TTL in milliseconds.
_INCR = """
local amount = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if amount > 0 and ARGV[2] ~= '' and current + amount > tonumber(ARGV[2]) then
  return {0, current}
end
local value = redis.call('INCRBY', KEYS[1], amount)
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {1, value}
"""


def ttl_ms(ttl_s: float) -> int:
    if not ttl_s > 0:
        raise ValueError("ttl_s must be positive: every counter expires")
    return max(1, math.ceil(ttl_s * 1000))


class RedisCounters:
    """``Counters`` over one Redis database; every key is put under ``prefix``."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "aperture:") -> None:
        self._client = client
        self._prefix = prefix
        self._incr = client.register_script(_INCR)

    @property
    def client(self) -> aioredis.Redis:
        """The underlying client (tests read TTLs with it)."""
        return self._client

    @property
    def prefix(self) -> str:
        return self._prefix

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "aperture:", max_connections: int = 50
    ) -> RedisCounters:
        # A blocking pool queues callers for a free connection; the default pool raises
        # "Too many connections" as soon as a burst of requests outnumbers it.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=2,
            socket_timeout=2,  # a slow Redis is an outage to report, not to wait out
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(aioredis.Redis.from_pool(pool), prefix=prefix)

    @asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        try:
            yield
        except (RedisError, OSError) as exc:
            raise StorageError(f"redis failed: {type(exc).__name__}: {exc}") from exc

    async def incr(
        self, key: str, amount: int = 1, *, limit: int | None = None, ttl_s: float
    ) -> Admission:
        args = [amount, "" if limit is None else limit, ttl_ms(ttl_s)]
        async with self._translated():
            admitted, value = await self._incr(keys=[self._prefix + key], args=args)
        return Admission(bool(admitted), int(value))

    async def get(self, key: str) -> int | None:
        async with self._translated():
            value = await self._client.get(self._prefix + key)
        return None if value is None else int(value)

    async def set(
        self, key: str, value: int, *, ttl_s: float, only_if_absent: bool = False
    ) -> bool:
        async with self._translated():
            done = await self._client.set(
                self._prefix + key, value, px=ttl_ms(ttl_s), nx=only_if_absent
            )
        return bool(done)

    async def delete(self, key: str) -> None:
        async with self._translated():
            await self._client.delete(self._prefix + key)

    async def ttl(self, key: str) -> float | None:
        """Seconds left before the key expires, or None if absent (for tests and debugging)."""
        async with self._translated():
            left = await self._client.pttl(self._prefix + key)
        return None if left < 0 else left / 1000

    async def close(self) -> None:
        await self._client.aclose()
