"""API keys: issued once, stored only as a keyed hash, looked up from memory.

A key reads ``ap_<id>_<secret>``: the public ``id`` names the key in lists and audit, the
secret carries 256 bits, and the store keeps only HMAC-SHA256(pepper, key). A lookup is a
dictionary read of the hash (no string comparison against a secret). The cache reloads when
the store's change counter moves: a background poll every half second, which is how a key
revoked on one instance is refused by every instance within a second.

A well-formed key the cache does not know may have been issued a moment ago on another
instance, so a miss catches up with the store before refusing: it reads the change counter
and reloads if it moved. Catch-ups are single-flight (every miss waiting meanwhile shares the
next one, which starts after they arrived, so it sees any key issued before them), spaced
``MISS_SPACING_S`` apart, and bounded by ``lookup_timeout_s``; a key found absent is
remembered for ``NEGATIVE_TTL_S``. However many random keys arrive, each process makes at
most one key read at a time and about twenty a second. Malformed keys never reach the store.
When the store cannot answer a miss, the caller gets 503 ``service_unavailable``: the key may
be valid, so a 401 would be a lie, while cached keys keep working through the outage.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import anyio
import msgspec

from aperture.errors import (
    InvalidApiKeyError,
    ModelNotAllowedError,
    ServiceUnavailableError,
    quote,
)
from aperture.storage import ApiKey, KeyStore, StorageError
from aperture.storage.records import BudgetPeriod

__all__ = [
    "INVALID_KEY_MESSAGE",
    "MISS_SPACING_S",
    "NEGATIVE_TTL_S",
    "IssuedKey",
    "KeyRing",
    "Principal",
]

log = logging.getLogger("aperture.keys")

INVALID_KEY_MESSAGE = (
    "Invalid API key. Send it as `Authorization: Bearer <key>` or `x-api-key: <key>`."
)
_UNAVAILABLE_MESSAGE = "The key store cannot be reached to check this API key; try again shortly."
_PREFIX = "ap_"
# What issue() mints: 6 random bytes of id in hex, 32 of secret in urlsafe base64.
_WELL_FORMED = re.compile(r"ap_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", re.ASCII)
NEGATIVE_TTL_S = 1.0
_NEGATIVE_MAX = 10_000
MISS_SPACING_S = 0.05


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: an issued key, or the master key (``key`` is then None)."""

    key: ApiKey | None = None

    @property
    def key_id(self) -> str | None:
        return self.key.id if self.key else None

    @property
    def is_admin(self) -> bool:
        """The master key, or a key issued as an admin key."""
        return self.key is None or self.key.admin

    @property
    def tenant(self) -> str | None:
        return self.key.tenant if self.key else None

    def check_model(self, *names: str) -> None:
        """Raise ``ModelNotAllowedError`` unless the key lists one of the model's ``names``
        (its public name or the alias the client used)."""
        allowed = self.key.models if self.key is not None else None
        if allowed is not None and not any(name in allowed for name in names):
            raise ModelNotAllowedError(
                f"This API key may not use the model {quote(names[-1])}.", param="model"
            )


class IssuedKey(msgspec.Struct, frozen=True):
    record: ApiKey
    secret: str
    """The whole key, shown once; it is not stored anywhere."""


class KeyRing:
    """Issues, revokes and authenticates API keys; owned by the app lifespan."""

    def __init__(
        self,
        store: KeyStore,
        pepper: bytes,
        master_key: str | None,
        *,
        lookup_timeout_s: float = 2.0,
    ) -> None:
        self._store = store
        # HMAC with the pepper's key schedule done once: each digest copies this state. On
        # OpenSSL 3 a one-shot hmac.digest() looks the hash up again every call, which costs
        # twenty times the hashing itself on a cache-cold request path.
        self._keyed = hmac.new(pepper, digestmod=hashlib.sha256)
        self._master = self._digest(master_key) if master_key else None
        # Names the master key in stored references (console sessions) without revealing
        # it: a new master key, or a new pepper, no longer matches, so those sessions end.
        self._master_ref = (
            "master:" + self._digest("aperture-reference:" + master_key).hex()[:16]
            if master_key
            else None
        )
        self._by_hash: dict[bytes, ApiKey] = {}
        self._by_id: dict[str, ApiKey] = {}
        self._version = -1
        self._timeout_s = lookup_timeout_s
        # One reload at a time, so an older list can never replace a newer one.
        self._reloading = anyio.Lock()
        self._absent: OrderedDict[bytes, float] = OrderedDict()  # digest -> forget at
        self._catch_up = _SingleFlight(self._refresh_within_deadline, MISS_SPACING_S)

    def _digest(self, presented: str) -> bytes:
        mac = self._keyed.copy()
        mac.update(presented.encode())
        return mac.digest()

    async def issue(
        self,
        name: str,
        *,
        tenant: str | None = None,
        models: Sequence[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        budget_usd: float | None = None,
        budget_tokens: int | None = None,
        budget_period: BudgetPeriod | None = None,
        expires_at: datetime | None = None,
        admin: bool = False,
    ) -> IssuedKey:
        key_id = secrets.token_hex(6)
        secret = f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(
            id=key_id,
            name=name,
            key_hash=self._digest(secret),
            created_at=datetime.now(UTC),
            tenant=tenant,
            models=tuple(models) if models is not None else None,
            rpm=rpm,
            tpm=tpm,
            budget_usd=budget_usd,
            budget_tokens=budget_tokens,
            budget_period=budget_period,
            expires_at=expires_at,
            admin=admin,
        )
        await self._store.create(record)
        await self._refresh_after_write()
        return IssuedKey(record, secret)

    async def revoke(self, key_id: str) -> ApiKey | None:
        revoked = await self._store.revoke(key_id, at=datetime.now(UTC))
        await self._refresh_after_write()
        return revoked

    async def _refresh_after_write(self) -> None:
        # The write is done and the store holds the truth: a reload that fails now must not
        # turn it into an error (a client retrying an issue would mint a second key). The
        # poll, or the next miss, catches up.
        try:
            await self._refresh_within_deadline(force=True)
        except StorageError as exc:
            log.warning("key cache not reloaded after a change: %s", exc)

    async def list(self, tenant: str | None = None) -> list[ApiKey]:
        return await self._store.list(tenant=tenant)

    async def refresh(self, *, force: bool = False) -> None:
        """Reload the cache if the store changed since the last load.

        Raises:
            StorageError: the store failed; the cache is left as it was.
        """
        async with self._reloading:
            version = await self._store.version()
            if version == self._version and not force:
                return
            keys = await self._store.list()
            self._by_hash = {k.key_hash: k for k in keys}
            self._by_id = {k.id: k for k in keys}
            self._version = version
            # Whatever was absent may exist now; the next miss asks again.
            self._absent.clear()

    async def _refresh_within_deadline(self, *, force: bool = False) -> None:
        """``refresh``, or StorageError once the deadline passes (a store that hangs)."""
        try:
            with anyio.fail_after(self._timeout_s):
                await self.refresh(force=force)
        except TimeoutError:
            raise StorageError(f"the key store did not answer within {self._timeout_s}s") from None

    async def watch(self, interval_s: float = 0.5) -> None:
        """Poll the store's change counter forever (a lifespan task)."""
        while True:
            await anyio.sleep(interval_s)
            try:
                await self._refresh_within_deadline()
            except StorageError as exc:
                # A storage outage keeps the last good cache: keys keep working meanwhile.
                log.debug("key cache not refreshed: %s", exc)
            except Exception:  # a poller that dies would freeze the cache, or stop the app
                log.exception("key cache refresh failed")

    async def authenticate(self, presented: str | None) -> Principal:
        """The principal for a presented key, or one uniform 401 whatever was wrong.

        Raises:
            InvalidApiKeyError: missing, unknown, revoked or expired.
            ServiceUnavailableError: a well-formed key the cache does not know, while the
                store cannot be asked about it.
        """
        if not presented:
            raise InvalidApiKeyError(INVALID_KEY_MESSAGE)
        digest = self._digest(presented)
        if self._master is not None and hmac.compare_digest(digest, self._master):
            return Principal()
        key = self._by_hash.get(digest)
        if key is None:
            key = await self._missed(presented, digest)
        if not key.usable_at(datetime.now(UTC)):
            raise InvalidApiKeyError(INVALID_KEY_MESSAGE)
        return Principal(key)

    def reference(self, principal: Principal) -> str:
        """How a stored record names ``principal``: the key's id, or the master key's tag."""
        if principal.key is not None:
            return principal.key.id
        if self._master_ref is None:
            raise ValueError("an open gateway has no principal to refer to")
        return self._master_ref

    async def resolve(self, reference: str) -> Principal | None:
        """The admin principal a stored ``reference`` names, from the cache; None once the
        key is revoked, expired, no longer an admin key, or unknown (or the master key has
        changed). A key id not cached yet (issued a moment ago elsewhere) catches up first.

        Raises:
            ServiceUnavailableError: the key is not cached and the store cannot be asked.
        """
        if reference.startswith("master:"):
            matches = self._master_ref is not None and hmac.compare_digest(
                reference, self._master_ref
            )
            return Principal() if matches else None
        key = self._by_id.get(reference)
        if key is None:
            try:
                await self._catch_up.run()
            except StorageError as exc:
                raise ServiceUnavailableError(
                    _UNAVAILABLE_MESSAGE, headers={"retry-after": "1"}
                ) from exc
            key = self._by_id.get(reference)
        if key is None or not key.admin or not key.usable_at(datetime.now(UTC)):
            return None
        return Principal(key)

    async def _missed(self, presented: str, digest: bytes) -> ApiKey:
        """The key behind a cache miss, after catching up with the store once."""
        if not _WELL_FORMED.fullmatch(presented) or self._recently_absent(digest):
            raise InvalidApiKeyError(INVALID_KEY_MESSAGE)
        try:
            await self._catch_up.run()
        except StorageError as exc:
            # Retry-After as for every store 503: the next catch-up may be a second away.
            raise ServiceUnavailableError(
                _UNAVAILABLE_MESSAGE, headers={"retry-after": "1"}
            ) from exc
        key = self._by_hash.get(digest)
        if key is None:
            self._remember_absent(digest)
            raise InvalidApiKeyError(INVALID_KEY_MESSAGE)
        return key

    def _recently_absent(self, digest: bytes) -> bool:
        forget_at = self._absent.get(digest)
        if forget_at is None:
            return False
        if forget_at <= time.monotonic():
            del self._absent[digest]
            return False
        return True

    def _remember_absent(self, digest: bytes) -> None:
        self._absent[digest] = time.monotonic() + NEGATIVE_TTL_S
        self._absent.move_to_end(digest)
        while len(self._absent) > _NEGATIVE_MAX:
            self._absent.popitem(last=False)


class _SingleFlight:
    """Runs ``work`` for many callers at once: each caller is served by a run that started
    after it called, concurrent callers share one run, and runs start ``spacing_s`` apart.

    A run whose store fails raises ``StorageError`` in every caller it served; a run cut
    short by its caller's cancellation is retried by the next waiter, so none inherits it.
    """

    def __init__(self, work: Callable[[], Awaitable[None]], spacing_s: float) -> None:
        self._work = work
        self._spacing_s = spacing_s
        self._started = 0  # runs begun
        self._succeeded = 0  # the number of the last run that succeeded
        self._failed: tuple[int, StorageError] | None = None
        self._running: anyio.Event | None = None
        self._last_start = -spacing_s

    async def run(self) -> None:
        needed = self._started + 1  # a run already under way began before this call
        while self._succeeded < needed:
            if self._failed is not None and self._failed[0] >= needed:
                # A fresh error per waiter: one instance raised in many tasks would collect
                # every task's traceback.
                raise StorageError(str(self._failed[1])) from self._failed[1]
            if self._running is not None:
                await self._running.wait()
                continue
            await self._lead()

    async def _lead(self) -> None:
        done = self._running = anyio.Event()
        try:
            # Numbered only after this pause: callers arriving during it are served by this
            # run, since its reads are still to come.
            wait_s = self._last_start + self._spacing_s - time.monotonic()
            await anyio.sleep(max(wait_s, 0))
            self._started += 1
            number = self._started
            self._last_start = time.monotonic()
            try:
                await self._work()
            except StorageError as exc:
                self._failed = (number, exc)
                raise
            self._succeeded = number
        finally:
            self._running = None
            done.set()
