"""Rate-limit windows and budget reservations in Redis, shared by every gateway instance.

Every operation is ONE Lua script (EVALSHA), so each read-modify-write is atomic across
instances; time is the server's (``redis.call('TIME')``, in microseconds), never a caller's;
every key a script writes gets its PEXPIRE in the same script, so no cancellation can leave a
key that lives for ever. The client does not retry (``RedisLink.from_url`` builds it with
``Retry(NoBackoff(), 0)``), and the scripts are idempotent where a retry could double count.
Every call goes through the link's guard (``redis_client.py``): a connection reset, a closed
transport, a timeout or a lost reply is a ``StorageError``, and an unanswering Redis fails
fast rather than making every request wait out the timeout.

Keys, all under ``prefix`` (``aperture:``)::

    win:{K}:at          ZSET   member -> admission time (µs)          sliding window K
    win:{K}:cost        HASH   m:<member> -> cost, sum -> total cost
    bud:{S}             HASH   spent_micros, spent_tokens (absent: unseeded),
                               reserved_micros, reserved_tokens        budget scope S
    bud:{S}:holds       ZSET   request id -> hold expiry (µs)
    bud:{S}:amounts     HASH   m:<id>, t:<id> -> the amounts the hold reserved
    hold:<id>           STRING the request holds a reservation (TTL: the hold)
    applied:<id>        STRING the request was settled (TTL: one day)
    instances           ZSET   instance id -> when its heartbeat lapses (µs)
    inst:{I}:holds      HASH   request id -> note, the holds instance I took (TTL: a hold)
    inst:{I}:claims     ZSET   request id -> when a survivor's claim on it lapses (µs)

An instance's holds are indexed by the same ``reserve`` script that takes them, and dropped by
the same ``settle`` that releases them, so the index is exactly what the instance holds. When
its heartbeat lapses (SIGKILL, OOM, a lost host), a survivor ``claim``s the holds (a lease, in
one script, so two survivors never work on one hold at once), charges and settles each.

Redis Cluster: every key one script touches must hash to the same slot, or Redis refuses it
with CROSSSLOT. The ``{...}`` hash tags keep a window's two keys, and a scope's three, in one
slot, so ``acquire``, ``adjust``, ``seed`` and ``state`` would run on a cluster. ``reserve``
and ``settle`` span several scopes plus the request's markers, which no cheap tag can put in
one slot: Aperture runs them against a single Redis node (or a primary with replicas), which
is what it supports today.

Amounts are integers (micro-dollars, tokens); Lua numbers are doubles, exact below 2**53.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from aperture.storage.base import StorageError
from aperture.storage.memory_limits import (
    APPLIED_TTL_S,
    check_charge,
    check_cost,
    check_limit,
    check_positive,
    check_scopes,
)
from aperture.storage.records import (
    BudgetCharge,
    BudgetDecision,
    BudgetScope,
    BudgetState,
    ClaimedHold,
    WindowAdmission,
)
from aperture.storage.redis_client import RedisLink
from aperture.storage.redis_counters import ttl_ms

__all__ = ["RedisLimits"]

# The instance registry outlives any heartbeat; every beat pushes its expiry back.
_INSTANCES_TTL_S = 86_400.0

_LIB = """
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function int(n)
  return string.format('%d', n)
end

-- Drop the members of a window stamped at or before cutoff; return the window's total.
local function purge_window(at, costs, cutoff)
  local gone = redis.call('ZRANGEBYSCORE', at, '-inf', int(cutoff))
  if #gone > 0 then
    local freed = 0
    for _, member in ipairs(gone) do
      local field = 'm:' .. member
      freed = freed + tonumber(redis.call('HGET', costs, field) or '0')
      redis.call('HDEL', costs, field)
    end
    redis.call('ZREMRANGEBYSCORE', at, '-inf', int(cutoff))
    if freed ~= 0 then
      redis.call('HINCRBY', costs, 'sum', int(-freed))
    end
  end
  return tonumber(redis.call('HGET', costs, 'sum') or '0')
end

-- Give back what a request's hold reserved in one scope (the caller removes it from holds).
local function release(state, amounts, id)
  local held = redis.call('HMGET', amounts, 'm:' .. id, 't:' .. id)
  redis.call('HDEL', amounts, 'm:' .. id, 't:' .. id)
  if redis.call('EXISTS', state) == 1 then
    redis.call('HINCRBY', state, 'reserved_micros', int(-(tonumber(held[1]) or 0)))
    redis.call('HINCRBY', state, 'reserved_tokens', int(-(tonumber(held[2]) or 0)))
  end
end

local function purge_holds(state, holds, amounts, now)
  local lapsed = redis.call('ZRANGEBYSCORE', holds, '-inf', int(now))
  for _, id in ipairs(lapsed) do
    release(state, amounts, id)
  end
  if #lapsed > 0 then
    redis.call('ZREMRANGEBYSCORE', holds, '-inf', int(now))
  end
end

-- {spent_micros, spent_tokens, reserved_micros, reserved_tokens}, or nil if unseeded.
local function read_state(state)
  local v = redis.call('HMGET', state,
    'spent_micros', 'spent_tokens', 'reserved_micros', 'reserved_tokens')
  if not v[1] then
    return nil
  end
  return {tonumber(v[1]), tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0}
end
"""

# KEYS: at, costs. ARGV: member, cost, limit, window (µs), TTL (ms).
# Returns {admitted, used, retry_after in µs or -1 for never}.
_ACQUIRE = (
    _LIB
    + """
local now = now_us()
local member, cost, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local used = purge_window(KEYS[1], KEYS[2], now - window)
if redis.call('ZSCORE', KEYS[1], member) then
  return {1, used, -1}
end
if used + cost <= limit then
  redis.call('ZADD', KEYS[1], int(now), member)
  redis.call('HSET', KEYS[2], 'm:' .. member, ARGV[2])
  used = redis.call('HINCRBY', KEYS[2], 'sum', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  return {1, used, -1}
end
if cost > limit then
  return {0, used, -1}
end
-- Oldest first: the cost fits once enough of it has slid out of the window.
local need, freed, start = used + cost - limit, 0, 0
while true do
  local batch = redis.call('ZRANGE', KEYS[1], start, start + 99, 'WITHSCORES')
  if #batch == 0 then
    break
  end
  for i = 1, #batch, 2 do
    freed = freed + tonumber(redis.call('HGET', KEYS[2], 'm:' .. batch[i]) or '0')
    if freed >= need then
      return {0, used, tonumber(batch[i + 1]) + window - now}
    end
  end
  start = start + 100
end
return {0, used, window}
"""
)

# KEYS: at, costs. ARGV: member, delta, window (µs), TTL (ms). Returns whether it was there.
_ADJUST = (
    _LIB
    + """
local now = now_us()
purge_window(KEYS[1], KEYS[2], now - tonumber(ARGV[3]))
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local field = 'm:' .. ARGV[1]
local old = tonumber(redis.call('HGET', KEYS[2], field) or '0')
local new = math.max(0, old + tonumber(ARGV[2]))
redis.call('HSET', KEYS[2], field, int(new))
redis.call('HINCRBY', KEYS[2], 'sum', int(new - old))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""
)

# KEYS: state. ARGV: spent micros, spent tokens, TTL (ms). Returns whether it was written.
_SEED = """
if redis.call('HSETNX', KEYS[1], 'spent_micros', ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'spent_tokens', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: hold marker, applied marker, per scope: state, holds, amounts; then the owner's
# index if ARGV[7] is '1'. ARGV: request id, micros, tokens, hold (µs), hold (ms), number of
# scopes, owned ('1' or '0'), note, then per scope: limit micros, limit tokens ('' for none),
# TTL (ms). Returns {'reserved'} | {'duplicate'} | {'unseeded', i} | {'denied', i, <4 counters>}.
_RESERVE = (
    _LIB
    + """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then
  return {'duplicate'}
end
local now = now_us()
local id, micros, tokens = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local n = tonumber(ARGV[6])
for i = 1, n do
  local k, a = 3 * i, 6 + 3 * i
  purge_holds(KEYS[k], KEYS[k + 1], KEYS[k + 2], now)
  local s = read_state(KEYS[k])
  if not s then
    return {'unseeded', i}
  end
  local limit_micros, limit_tokens = ARGV[a], ARGV[a + 1]
  if (limit_micros ~= '' and s[1] + s[3] + micros > tonumber(limit_micros))
      or (limit_tokens ~= '' and s[2] + s[4] + tokens > tonumber(limit_tokens)) then
    return {'denied', i, s[1], s[2], s[3], s[4]}
  end
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[5])
if ARGV[7] == '1' then
  local index = KEYS[3 * n + 3]
  redis.call('HSET', index, id, ARGV[8])
  if redis.call('PTTL', index) < tonumber(ARGV[5]) then
    redis.call('PEXPIRE', index, ARGV[5])
  end
end
local expiry = int(now + tonumber(ARGV[4]))
for i = 1, n do
  local k, ttl = 3 * i, ARGV[8 + 3 * i]
  redis.call('ZADD', KEYS[k + 1], expiry, id)
  redis.call('HSET', KEYS[k + 2], 'm:' .. id, ARGV[2], 't:' .. id, ARGV[3])
  redis.call('HINCRBY', KEYS[k], 'reserved_micros', ARGV[2])
  redis.call('HINCRBY', KEYS[k], 'reserved_tokens', ARGV[3])
  redis.call('PEXPIRE', KEYS[k], ttl)
  redis.call('PEXPIRE', KEYS[k + 1], ttl)
  redis.call('PEXPIRE', KEYS[k + 2], ttl)
end
return {'reserved'}
"""
)

# KEYS: hold marker, applied marker, per scope: state, holds, amounts; then the owner's index
# and claims if ARGV[6] is '1'. ARGV: request id, micros, tokens, applied TTL (ms), number of
# scopes, owned ('1' or '0'), then per scope: TTL (ms).
# Returns whether this call applied the settlement.
_SETTLE = (
    _LIB
    + """
local id = ARGV[1]
local n = tonumber(ARGV[5])
if ARGV[6] == '1' then
  -- Even a repeated settle unindexes: a survivor's first try may have died right after it.
  redis.call('HDEL', KEYS[3 * n + 3], id)
  redis.call('ZREM', KEYS[3 * n + 4], id)
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local now = now_us()
redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
redis.call('DEL', KEYS[1])
for i = 1, n do
  local k, ttl = 3 * i, ARGV[6 + i]
  purge_holds(KEYS[k], KEYS[k + 1], KEYS[k + 2], now)
  if redis.call('ZSCORE', KEYS[k + 1], id) then
    release(KEYS[k], KEYS[k + 2], id)
    redis.call('ZREM', KEYS[k + 1], id)
  end
  if redis.call('HEXISTS', KEYS[k], 'spent_micros') == 1 then
    redis.call('HINCRBY', KEYS[k], 'spent_micros', ARGV[2])
    redis.call('HINCRBY', KEYS[k], 'spent_tokens', ARGV[3])
    redis.call('PEXPIRE', KEYS[k], ttl)
    redis.call('PEXPIRE', KEYS[k + 1], ttl)
    redis.call('PEXPIRE', KEYS[k + 2], ttl)
  end
end
return 1
"""
)

# KEYS: instances. ARGV: instance, heartbeat TTL (µs), registry TTL (ms).
_BEAT = (
    _LIB
    + """
redis.call('ZADD', KEYS[1], int(now_us() + tonumber(ARGV[2])), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
"""
)

# KEYS: instances. ARGV: how many. Returns the instances whose heartbeat lapsed.
_LOST = (
    _LIB
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now_us()), 'LIMIT', 0, ARGV[1])
"""
)

# KEYS: instances, index, claims. ARGV: instance, lease (µs), limit.
# Returns {id1, note1, id2, note2, ...}: the holds leased to the caller.
_CLAIM = (
    _LIB
    + """
local now = now_us()
local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
if beat and tonumber(beat) > now then
  return {}
end
local ids = redis.call('HKEYS', KEYS[2])
if #ids == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[3])
  return {}
end
local out, lease, limit = {}, int(now + tonumber(ARGV[2])), tonumber(ARGV[3]) * 2
for _, id in ipairs(ids) do
  local held = redis.call('ZSCORE', KEYS[3], id)
  if not held or tonumber(held) <= now then
    redis.call('ZADD', KEYS[3], lease, id)
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', KEYS[2], id)
    if #out >= limit then
      break
    end
  end
end
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return out
"""
)

# KEYS: instances, index. ARGV: instance.
_RETIRE = """
if redis.call('HLEN', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
elseif redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
end
"""

# KEYS: state, holds, amounts. Returns the four counters, or {} if unseeded.
_STATE = (
    _LIB
    + """
purge_holds(KEYS[1], KEYS[2], KEYS[3], now_us())
return read_state(KEYS[1]) or {}
"""
)


def _us(seconds: float, what: str) -> int:
    check_positive(seconds, what)
    return max(1, round(seconds * 1_000_000))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _state(values: Sequence[Any]) -> BudgetState:
    spent_micros, spent_tokens, reserved_micros, reserved_tokens = (int(v) for v in values)
    return BudgetState(
        spent=BudgetCharge(spent_micros, spent_tokens),
        reserved=BudgetCharge(reserved_micros, reserved_tokens),
    )


class RedisLimits:
    """``Limits`` over one Redis database, every key under ``prefix``.

    It borrows ``client`` (normally ``RedisCounters.link``, so both roles share one pool and
    one view of whether Redis is up) and does not close it: whoever made the client does.
    """

    def __init__(self, client: aioredis.Redis | RedisLink, *, prefix: str = "aperture:") -> None:
        self._link = client if isinstance(client, RedisLink) else RedisLink(client)
        self._translated = self._link.guarded
        client = self._link.client
        self._client = client
        self._prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._adjust = client.register_script(_ADJUST)
        self._seed = client.register_script(_SEED)
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._state = client.register_script(_STATE)
        self._beat = client.register_script(_BEAT)
        self._lost = client.register_script(_LOST)
        self._claim = client.register_script(_CLAIM)
        self._retire = client.register_script(_RETIRE)

    @property
    def client(self) -> aioredis.Redis:
        return self._client

    @property
    def prefix(self) -> str:
        return self._prefix

    def _window_keys(self, key: str) -> list[str]:
        base = f"{self._prefix}win:{{{key}}}"
        return [f"{base}:at", f"{base}:cost"]

    def _scope_keys(self, scope: str) -> list[str]:
        base = f"{self._prefix}bud:{{{scope}}}"
        return [base, f"{base}:holds", f"{base}:amounts"]

    def _marker_keys(self, request_id: str) -> list[str]:
        return [f"{self._prefix}hold:{request_id}", f"{self._prefix}applied:{request_id}"]

    def _instance_keys(self, instance: str) -> list[str]:
        base = f"{self._prefix}inst:{{{instance}}}"
        return [f"{base}:holds", f"{base}:claims"]

    @property
    def _instances(self) -> str:
        return f"{self._prefix}instances"

    async def acquire(
        self, key: str, member: str, cost: int, *, limit: int, window_s: float
    ) -> WindowAdmission:
        window_us = _us(window_s, "window_s")
        check_cost(cost)
        args: list[str | int] = [member, cost, limit, window_us, ttl_ms(window_s)]
        async with self._translated():
            admitted, used, retry_us = await self._acquire(keys=self._window_keys(key), args=args)
        retry = None if int(retry_us) < 0 else int(retry_us) / 1_000_000
        return WindowAdmission(bool(admitted), int(used), retry)

    async def adjust(self, key: str, member: str, delta: int, *, window_s: float) -> None:
        args: list[str | int] = [member, delta, _us(window_s, "window_s"), ttl_ms(window_s)]
        async with self._translated():
            await self._adjust(keys=self._window_keys(key), args=args)

    async def seed(self, scope: BudgetScope, spent: BudgetCharge) -> bool:
        args = [spent.micros, spent.tokens, ttl_ms(scope.ttl_s)]
        async with self._translated():
            written = await self._seed(keys=self._scope_keys(scope.key)[:1], args=args)
        return bool(written)

    async def reserve(
        self,
        request_id: str,
        scopes: Sequence[BudgetScope],
        estimate: BudgetCharge,
        *,
        hold_s: float,
        owner: str | None = None,
        note: bytes = b"",
    ) -> BudgetDecision:
        check_charge(estimate, "estimate")
        check_scopes(scopes)
        hold_us = _us(hold_s, "hold_s")
        keys = self._marker_keys(request_id)
        args: list[str | int | bytes] = [
            request_id,
            estimate.micros,
            estimate.tokens,
            hold_us,
            ttl_ms(hold_s),
            len(scopes),
            "0" if owner is None else "1",
            note,
        ]
        for scope in scopes:
            keys += self._scope_keys(scope.key)
            args += [
                "" if scope.limit_micros is None else scope.limit_micros,
                "" if scope.limit_tokens is None else scope.limit_tokens,
                ttl_ms(scope.ttl_s),
            ]
        if owner is not None:
            keys += self._instance_keys(owner)[:1]
        async with self._translated():
            answer = await self._reserve(keys=keys, args=args)
        match _text(answer[0]):
            case "reserved":
                return BudgetDecision(outcome="reserved")
            case "duplicate":
                return BudgetDecision(outcome="duplicate")
            case "unseeded":
                return BudgetDecision(outcome="unseeded", scope=scopes[int(answer[1]) - 1].key)
            case "denied":
                return BudgetDecision(
                    outcome="denied",
                    scope=scopes[int(answer[1]) - 1].key,
                    state=_state(answer[2:6]),
                )
            case other:
                raise StorageError(f"redis answered reserve with {other!r}")

    async def settle(
        self,
        request_id: str,
        scopes: Sequence[BudgetScope],
        actual: BudgetCharge,
        *,
        owner: str | None = None,
    ) -> bool:
        check_charge(actual, "actual")
        check_scopes(scopes)
        keys = self._marker_keys(request_id)
        args: list[str | int] = [
            request_id,
            actual.micros,
            actual.tokens,
            ttl_ms(APPLIED_TTL_S),
            len(scopes),
            "0" if owner is None else "1",
        ]
        for scope in scopes:
            keys += self._scope_keys(scope.key)
            args.append(ttl_ms(scope.ttl_s))
        if owner is not None:
            keys += self._instance_keys(owner)
        async with self._translated():
            applied = await self._settle(keys=keys, args=args)
        return bool(applied)

    async def beat(self, instance: str, *, ttl_s: float) -> None:
        args: list[str | int] = [instance, _us(ttl_s, "ttl_s"), ttl_ms(_INSTANCES_TTL_S)]
        async with self._translated():
            await self._beat(keys=[self._instances], args=args)

    async def lost(self) -> list[str]:
        async with self._translated():
            found = await self._lost(keys=[self._instances], args=[100])
        return [_text(instance) for instance in found]

    async def claim(self, instance: str, *, lease_s: float, limit: int) -> list[ClaimedHold]:
        check_limit(limit)
        args: list[str | int] = [instance, _us(lease_s, "lease_s"), limit]
        async with self._translated():
            found = await self._claim(
                keys=[self._instances, *self._instance_keys(instance)], args=args
            )
        return [
            ClaimedHold(instance, _text(found[i]), bytes(found[i + 1]))
            for i in range(0, len(found), 2)
        ]

    async def retire(self, instance: str) -> None:
        keys = [self._instances, self._instance_keys(instance)[0]]
        async with self._translated():
            await self._retire(keys=keys, args=[instance])

    async def state(self, scope: str) -> BudgetState | None:
        async with self._translated():
            values = await self._state(keys=self._scope_keys(scope), args=[])
        return _state(values) if values else None
