"""Try a request's targets in the order its route's strategy chooses, failing over on
errors that another target could fix.

Failover happens only before the first byte reaches the client: a stream is opened and its
first event read before the response starts, so a provider that fails early is replaced,
and one that fails later ends the stream with one in-band error.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

from aperture.errors import GatewayError, UnsupportedCapabilityError
from aperture.model import ChatRequest, ChatResponse, Target
from aperture.routing.catalog import Resolution, TargetOption
from aperture.routing.dispatch import Dispatcher, EventStream

__all__ = ["AttemptHooks", "Router"]


class AttemptHooks(Protocol):
    """What the caller does around each attempt (per-target preparation, bookkeeping)."""

    def started(self, target: Target) -> None:
        """An attempt on ``target`` begins."""
        ...

    async def prepare(self, request: ChatRequest, target: Target) -> ChatRequest:
        """``request`` made acceptable to ``target`` (images normalised for it)."""
        ...


class Router:
    def __init__(self, dispatcher: Dispatcher, rng: random.Random | None = None) -> None:
        self._dispatcher = dispatcher
        self._rng = rng or random.Random()

    def order(self, resolution: Resolution, options: Sequence[TargetOption]) -> list[TargetOption]:
        """The attempt order: the first is tried first, the rest are the failover order."""
        if resolution.strategy == "weighted":
            return _weighted_order(options, self._rng)
        if resolution.strategy == "canary":
            canary = [o for o in options if o.canary]
            stable = [o for o in options if not o.canary]
            if canary and self._rng.random() * 100 < resolution.canary_percent:
                return canary + stable
            return stable + canary
        return list(options)

    async def complete(
        self,
        request: ChatRequest,
        resolution: Resolution,
        options: Sequence[TargetOption],
        hooks: AttemptHooks,
    ) -> ChatResponse:
        last: GatewayError | None = None
        for option in self.order(resolution, options):
            hooks.started(option.target)
            prepared = await hooks.prepare(request, option.target)
            try:
                return await self._dispatcher.complete(prepared, option.target)
            except GatewayError as error:
                if not error.retryable:
                    raise
                last = error
        raise last or _no_target(resolution)

    async def open_stream(
        self,
        request: ChatRequest,
        resolution: Resolution,
        options: Sequence[TargetOption],
        hooks: AttemptHooks,
    ) -> EventStream:
        last: GatewayError | None = None
        for option in self.order(resolution, options):
            hooks.started(option.target)
            prepared = await hooks.prepare(request, option.target)
            try:
                stream = await self._dispatcher.open_stream(prepared, option.target)
            except GatewayError as error:
                if not error.retryable:
                    raise
                last = error
                continue
            try:
                # Nothing has reached the client yet: an early failure can still fail over.
                await stream.prime()
            except GatewayError as error:
                await stream.aclose()
                if not error.retryable:
                    raise
                last = error
                continue
            return stream
        raise last or _no_target(resolution)


def _weighted_order(options: Sequence[TargetOption], rng: random.Random) -> list[TargetOption]:
    # Weighted random without replacement: the first pick follows the weights exactly, and
    # the rest form the failover order.
    remaining = [o for o in options if o.weight > 0]
    ordered: list[TargetOption] = []
    while remaining:
        pick = rng.uniform(0, sum(o.weight for o in remaining))
        for option in remaining:
            pick -= option.weight
            if pick <= 0:
                break
        ordered.append(option)
        remaining.remove(option)
    return ordered + [o for o in options if o.weight <= 0]


def _no_target(resolution: Resolution) -> GatewayError:
    return UnsupportedCapabilityError(
        f"No target is available for {resolution.name!r}.", param="model"
    )
