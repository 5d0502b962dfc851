"""Requests and tokens per minute, per key, per tenant and per model.

Each limit is an exact moving window in the ``Limits`` store (Redis server time when Redis is
configured, this process's clock otherwise): at most ``rpm`` requests, and ``tpm`` tokens, in
any 60 seconds. Tokens are admitted on the request's estimate (text, image tokens from the
image pipeline, and ``max_tokens`` of output) and corrected with the provider's usage when the
request ends. A request refused by one window gives back what earlier windows admitted, so a
refusal never costs quota. Rate limits fail open: a store outage is logged, not a 5xx.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Sequence

import msgspec

from aperture.errors import RateLimitExceededError
from aperture.governance.keys import Principal
from aperture.settings.governance import LimitSettings
from aperture.storage import Limits, StorageError

__all__ = ["RateLimiter", "Ticket"]

log = logging.getLogger(__name__)

_WINDOW_S = 60.0


class _Window(msgspec.Struct, frozen=True):
    key: str
    limit: int
    tokens: bool
    """True: counts tokens (tpm); False: counts requests (rpm)."""
    who: str
    """Whose limit, for the client's message: ``API key``, ``tenant``, ``model``."""


class Ticket(msgspec.Struct, frozen=True):
    """The windows one request was admitted to, to correct its token counts at the end."""

    request_id: str
    windows: tuple[_Window, ...]
    estimate: int


class RateLimiter:
    def __init__(self, limits: Limits, rules: Sequence[LimitSettings]) -> None:
        self._limits = limits
        self._tenants = {r.tenant: r for r in rules if r.tenant is not None}
        self._models = tuple(r for r in rules if r.model is not None)

    @property
    def configured(self) -> bool:
        """Whether any tenant or model limit exists (keys may still carry their own)."""
        return bool(self._tenants or self._models)

    def windows(self, principal: Principal, model: str) -> tuple[_Window, ...]:
        found: list[_Window] = []
        key = principal.key
        if key is not None:
            found += _pair(f"key:{key.id}", key.rpm, key.tpm, "API key")
            rule = self._tenants.get(key.tenant) if key.tenant is not None else None
            if rule is not None:
                found += _pair(f"tenant:{key.tenant}", rule.rpm, rule.tpm, "tenant")
        for rule in self._models:
            if rule.model is not None and fnmatch.fnmatchcase(model, rule.model):
                found += _pair(f"model:{rule.model}", rule.rpm, rule.tpm, "model")
        return tuple(found)

    async def admit(
        self, request_id: str, principal: Principal, model: str, tokens: int
    ) -> Ticket | None:
        """Count the request (and its estimated ``tokens``) in every window that applies.

        Raises:
            RateLimitExceededError: a window is full; ``Retry-After`` says when it has room.
        """
        windows = self.windows(principal, model)
        if not windows:
            return None
        admitted: list[_Window] = []
        try:
            for window in windows:
                cost = tokens if window.tokens else 1
                answer = await self._limits.acquire(
                    window.key, request_id, cost, limit=window.limit, window_s=_WINDOW_S
                )
                if not answer.admitted:
                    await self._give_back(request_id, admitted, tokens)
                    raise _refused(window, answer.retry_after_s, tokens)
                admitted.append(window)
        except StorageError as exc:
            log.warning("rate limits not enforced for %s: %s", request_id, exc)
            return None
        return Ticket(request_id, tuple(admitted), tokens)

    async def correct(self, ticket: Ticket, tokens: int) -> None:
        """Replace the token estimate with what the request really used."""
        delta = tokens - ticket.estimate
        if delta == 0:
            return
        try:
            for window in ticket.windows:
                if window.tokens:
                    await self._limits.adjust(
                        window.key, ticket.request_id, delta, window_s=_WINDOW_S
                    )
        except StorageError as exc:
            log.warning("token count not corrected for %s: %s", ticket.request_id, exc)

    async def release(self, ticket: Ticket) -> None:
        """Give back everything ``ticket`` counted, requests too: the request never ran."""
        try:
            await self._give_back(ticket.request_id, list(ticket.windows), ticket.estimate)
        except StorageError as exc:
            log.warning("rate limits not given back for %s: %s", ticket.request_id, exc)

    async def _give_back(self, request_id: str, windows: list[_Window], tokens: int) -> None:
        for window in windows:
            cost = tokens if window.tokens else 1
            await self._limits.adjust(window.key, request_id, -cost, window_s=_WINDOW_S)


def _pair(scope: str, rpm: int | None, tpm: int | None, who: str) -> list[_Window]:
    found = []
    if rpm is not None:
        found.append(_Window(f"rl:{scope}:rpm", rpm, False, who))
    if tpm is not None:
        found.append(_Window(f"rl:{scope}:tpm", tpm, True, who))
    return found


def _refused(window: _Window, retry_after_s: float | None, tokens: int) -> RateLimitExceededError:
    unit = "tokens" if window.tokens else "requests"
    if retry_after_s is None:
        # The estimate alone is over the limit: waiting cannot help, a smaller request can.
        return RateLimitExceededError(
            f"This request needs about {tokens} tokens, more than the {window.who}'s limit of "
            f"{window.limit} tokens per minute. Lower max_tokens or send less.",
            headers={"x-should-retry": "false"},
        )
    wait = max(1, math.ceil(retry_after_s))
    return RateLimitExceededError(
        f"Rate limit of the {window.who} reached: {window.limit} {unit} per minute. "
        f"Retry in {wait} s.",
        headers={"retry-after": str(wait), "retry-after-ms": str(math.ceil(retry_after_s * 1000))},
    )
