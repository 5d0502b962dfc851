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

from aperture.storage import redis_limit_scripts as scripts
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
        self._acquire = client.register_script(scripts.ACQUIRE)
        self._adjust = client.register_script(scripts.ADJUST)
        self._seed = client.register_script(scripts.SEED)
        self._reserve = client.register_script(scripts.RESERVE)
        self._settle = client.register_script(scripts.SETTLE)
        self._state = client.register_script(scripts.STATE)
        self._beat = client.register_script(scripts.BEAT)
        self._lost = client.register_script(scripts.LOST)
        self._claim = client.register_script(scripts.CLAIM)
        self._retire = client.register_script(scripts.RETIRE)

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
