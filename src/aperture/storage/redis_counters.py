"""Counters in Redis, shared by every gateway instance: ``redis://host:6379/0``.

Each read-modify-write is one Lua script, so it is atomic across instances, and the TTL is
set inside the same script: no cancellation between INCR and EXPIRE can leave a key that
lives forever. The client never retries a command by itself: a retried increment after a
timeout would count twice. Every call goes through the link's guard (``redis_client.py``), so
any Redis fault is a ``StorageError`` and an unanswering Redis fails fast.
"""

from __future__ import annotations

import math

import redis.asyncio as aioredis

from aperture.storage.records import Admission
from aperture.storage.redis_client import RedisLink

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

    def __init__(self, client: aioredis.Redis | RedisLink, *, prefix: str = "aperture:") -> None:
        self._link = client if isinstance(client, RedisLink) else RedisLink(client)
        self._client = self._link.client
        self._prefix = prefix
        self._incr = self._client.register_script(_INCR)
        self._translated = self._link.guarded

    @property
    def client(self) -> aioredis.Redis:
        """The underlying client (tests read TTLs with it)."""
        return self._client

    @property
    def link(self) -> RedisLink:
        """The client with its fault guard, for the other Redis stores to share."""
        return self._link

    @property
    def prefix(self) -> str:
        return self._prefix

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "aperture:",
        max_connections: int = 50,
        timeout_s: float = 2.0,
        retry_s: float = 1.0,
    ) -> RedisCounters:
        link = RedisLink.from_url(
            url, timeout_s=timeout_s, retry_s=retry_s, max_connections=max_connections
        )
        return cls(link, prefix=prefix)

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
        await self._link.close()
