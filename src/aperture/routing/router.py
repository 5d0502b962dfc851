"""Try a request's targets in the order its route's strategy chooses, with retries inside a
deadline and a budget, open circuit breakers skipped, and failover only before the first
byte reaches the client.

A stream is opened and its first event read before the response starts, so a provider that
fails early is replaced; one that fails later ends the stream with one in-band error.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import anyio

from aperture.errors import (
    GatewayError,
    UpstreamError,
    UpstreamQuotaError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from aperture.model import ChatRequest, ChatResponse, Target
from aperture.routing.breaker import Breakers
from aperture.routing.catalog import Resolution, TargetOption
from aperture.routing.dispatch import Dispatcher, EventStream
from aperture.routing.retry import RetryBudget, RetryPolicy, retryable
from aperture.routing.strategies import Candidate, TargetStats, strategy_for
from aperture.tracing import NO_TRACER, Attributes, Span, Tracer

__all__ = ["AttemptHooks", "Attempts", "Router"]

T = TypeVar("T")


class AttemptHooks(Protocol):
    """What the caller does around each attempt (per-target preparation, bookkeeping)."""

    async def prepare(self, request: ChatRequest, target: Target) -> ChatRequest:
        """``request`` made acceptable to ``target`` (images normalised for it)."""
        ...

    def finished(self, key: str, outcome: str, seconds: float) -> None:
        """The attempt on target ``key`` ended (``ok`` or an error code) after ``seconds``."""
        ...


@dataclass(slots=True)
class Attempts:
    """One request's attempts over its targets, as ``Router.attempts`` returns them.

    The router alone writes it; the caller reads it however the attempts end (an answer, an
    error, a cancellation): what was tried is what the request is audited and charged for.
    """

    router: Router
    request: ChatRequest
    resolution: Resolution
    options: Sequence[TargetOption]
    hooks: AttemptHooks
    target: Target | None = field(default=None, init=False)
    """The target of the current (or last) attempt; None before the first."""
    count: int = field(default=0, init=False)
    """How many attempts have begun."""
    upstream_s: float = field(default=0.0, init=False)
    """Time spent waiting on providers, to tell the gateway's own overhead apart."""

    async def complete(self) -> ChatResponse:
        """The first answer a target gives, trying them in order.

        Raises:
            GatewayError: the last attempt's failure, or every target's circuit is open.
        """
        return await self.router._run(self, self.router._complete_on)

    async def open_stream(self) -> EventStream:
        """The first stream a target opens, its first event already read.

        Raises:
            GatewayError: as ``complete``.
        """
        return await self.router._run(self, self.router._open_on)

    async def count_tokens(self) -> int | None:
        """The first target's own count of the input tokens (None: its kind counts none),
        failing over as ``complete`` does.

        Raises:
            GatewayError: as ``complete``.
        """
        return await self.router._run(self, self.router._count_on)


class Router:
    def __init__(
        self,
        dispatcher: Dispatcher,
        breakers: Breakers,
        retry: RetryPolicy,
        *,
        stats: TargetStats | None = None,
        rng: random.Random | None = None,
        tracer: Tracer = NO_TRACER,
    ) -> None:
        self._dispatcher = dispatcher
        self._breakers = breakers
        self._retry = retry
        self._budget: RetryBudget = retry.new_budget()
        self.stats = stats or TargetStats()
        self._rng = rng or random.Random()
        self._tracer = tracer
        self.seen: set[str] = set()
        """Targets attempted so far, for reporting their breakers' states."""

    def order(self, resolution: Resolution, options: Sequence[TargetOption]) -> list[TargetOption]:
        """The attempt order: the first is tried first, the rest are the failover order."""
        if len(options) == 1:  # most routes: no strategy has anything to choose
            return list(options)
        by_key = {o.key: o for o in options}
        candidates = [
            Candidate(o.key, weight=o.weight, priority=i, canary=o.canary)
            for i, o in enumerate(options)
        ]
        strategy = strategy_for(resolution.strategy, canary_percent=resolution.canary_percent)
        return [by_key[c.key] for c in strategy.order(candidates, self.stats, self._rng)]

    def attempts(
        self,
        request: ChatRequest,
        resolution: Resolution,
        options: Sequence[TargetOption],
        hooks: AttemptHooks,
    ) -> Attempts:
        """The attempts ``request`` will make over ``options``; none has begun yet."""
        return Attempts(self, request, resolution, options, hooks)

    async def _complete_on(self, prepared: ChatRequest, target: Target) -> ChatResponse:
        return await self._dispatcher.complete(prepared, target)

    async def _count_on(self, prepared: ChatRequest, target: Target) -> int | None:
        return await self._dispatcher.count_tokens(prepared, target)

    async def _open_on(self, prepared: ChatRequest, target: Target) -> EventStream:
        name = target.provider.name
        try:
            with anyio.fail_after(target.provider.first_byte_timeout_s):
                stream = await self._dispatcher.open_stream(prepared, target)
                try:
                    # Nothing has reached the client yet: an early failure can fail over.
                    await stream.prime()
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await stream.aclose()
                    raise
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"{name} sent nothing within {target.provider.first_byte_timeout_s} s.",
                provider=name,
            ) from exc
        return stream

    async def _run(
        self, attempts: Attempts, attempt: Callable[[ChatRequest, Target], Awaitable[T]]
    ) -> T:
        """``attempt`` on each target in turn until one succeeds, recorded in ``attempts``."""
        resolution, hooks = attempts.resolution, attempts.hooks
        ordered = self.order(resolution, attempts.options)
        started = time.monotonic()
        self._budget.record_request()
        last: GatewayError | None = None
        tried: set[str] = set()
        tries = max(self._retry.max_attempts, len(ordered))
        option = await self._next_allowed(ordered, 1)
        for number in range(1, tries + 1):
            if option is None:
                break
            if option.key in tried and last is not None:
                # Back to a target already tried: back off (or honour its Retry-After) first.
                await anyio.sleep(self._retry.delay_s(last, number - 1, self._rng))
            tried.add(option.key)
            target = option.target
            # For a stream the attempt (and its span) ends once the first event has arrived:
            # what follows belongs to the request.
            attributes = _attempt_attributes(target, number)
            with self._tracer.span("aperture.upstream.attempt", attributes, kind="client") as span:
                attempts.target = target
                attempts.count += 1
                self.seen.add(option.key)
                # Outside the try: a target refusing the images is not a reason to retry.
                prepared = await hooks.prepare(attempts.request, target)
                try:
                    result = await self._attempt(option, prepared, attempts, attempt, span)
                except GatewayError as error:
                    last = error
                    if not retryable(error) or number == tries:
                        raise
                    elapsed = time.monotonic() - started
                    following = await self._next_allowed(ordered, number + 1)
                    # Another target need not wait for this one's Retry-After.
                    failover = following is not None and following.key not in tried
                    if not self._retry.should_retry(error, number, elapsed, failover=failover):
                        raise
                    if not self._budget.try_spend():
                        raise
                    option = following
                else:
                    # An earlier attempt's error holds this frame in its traceback, and the
                    # frame the error: a cycle keeping the request (its images) alive until
                    # the cyclic collector, which runs rarely (``runtime.freeze_heap``).
                    last = None
                    return result
        if last is not None:
            raise last
        raise await self._all_open(resolution, ordered)

    async def _attempt(
        self,
        option: TargetOption,
        prepared: ChatRequest,
        attempts: Attempts,
        attempt: Callable[[ChatRequest, Target], Awaitable[T]],
        span: Span,
    ) -> T:
        """One attempt on ``option``, recorded in ``attempts``, by the hooks, the breaker and
        ``span``."""
        began = time.perf_counter()
        try:
            with self.stats.track(option.key):
                result = await attempt(prepared, option.target)
        except GatewayError as error:
            self._finished(attempts, option.key, error.code, began)
            span.set("aperture.outcome", error.code)
            span.fail(error.code)
            await self._record(option, error)
            raise
        self._finished(attempts, option.key, "ok", began)
        span.set("aperture.outcome", "ok")
        await self._breakers.record(option.key, ok=True)
        return result

    @staticmethod
    def _finished(attempts: Attempts, key: str, outcome: str, began: float) -> None:
        seconds = time.perf_counter() - began
        attempts.upstream_s += seconds
        attempts.hooks.finished(key, outcome, seconds)

    async def _next_allowed(self, ordered: list[TargetOption], number: int) -> TargetOption | None:
        # Go round the order from this attempt's place, skipping targets whose circuit is open.
        for offset in range(len(ordered)):
            option = ordered[(number - 1 + offset) % len(ordered)]
            if await self._breakers.allow(option.key):
                return option
        return None

    async def _record(self, option: TargetOption, error: GatewayError) -> None:
        if isinstance(error, UpstreamQuotaError):
            # One answer proves a spent quota, and asking again on every request only burns
            # latency: out of rotation for the provider's cooldown, shared by all instances.
            await self._breakers.hold(option.key, option.target.provider.quota_cooldown_s)
        elif isinstance(error, UpstreamError) and retryable(error):
            # Only failures another moment could fix count against a target: not its refusals.
            await self._breakers.record(option.key, ok=False)

    async def _all_open(
        self, resolution: Resolution, ordered: Sequence[TargetOption]
    ) -> UpstreamUnavailableError:
        """The fast answer when no target may be tried, with ``Retry-After`` saying when the
        first breaker half-opens (at least 1 s: a client must not spin)."""
        waits = [await self._breakers.retry_in_s(option.key) for option in ordered]
        wait = max(1, math.ceil(min(waits, default=0.0)))
        return UpstreamUnavailableError(
            f"Every target for {resolution.name!r} is failing (circuit open); "
            f"try again in {wait} s.",
            headers={"retry-after": str(wait)},
        )


def _attempt_attributes(target: Target, number: int) -> Attributes:
    return {
        "aperture.provider": target.provider.name,
        "aperture.provider.kind": target.provider.kind,
        "aperture.model": target.upstream_model,
        "aperture.attempt": number,
    }
