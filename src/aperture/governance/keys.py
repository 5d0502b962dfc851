"""API keys: issued once, stored only as a keyed hash, looked up from memory.

A key reads ``ap_<id>_<secret>``: the public ``id`` names the key in lists and audit, the
secret carries 256 bits, and the store keeps only HMAC-SHA256(pepper, key). Every lookup is
a dictionary read of the hash (no database read per request, no string comparison against
a secret); the cache reloads when the store's change counter moves, which is how a key
revoked on one instance is refused by every instance within a second.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import anyio
import msgspec

from aperture.errors import InvalidApiKeyError, ModelNotAllowedError
from aperture.storage import ApiKey, KeyStore, StorageError
from aperture.storage.records import BudgetPeriod

__all__ = ["INVALID_KEY_MESSAGE", "IssuedKey", "KeyRing", "Principal"]

log = logging.getLogger("aperture.keys")

INVALID_KEY_MESSAGE = (
    "Invalid API key. Send it as `Authorization: Bearer <key>` or `x-api-key: <key>`."
)
_PREFIX = "ap_"


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
                f"This API key may not use the model {names[-1]!r}.", param="model"
            )


class IssuedKey(msgspec.Struct, frozen=True):
    record: ApiKey
    secret: str
    """The whole key, shown once; it is not stored anywhere."""


class KeyRing:
    """Issues, revokes and authenticates API keys; owned by the app lifespan."""

    def __init__(self, store: KeyStore, pepper: bytes, master_key: str | None) -> None:
        self._store = store
        # HMAC with the pepper's key schedule done once: each digest copies this state. On
        # OpenSSL 3 a one-shot hmac.digest() looks the hash up again every call, which costs
        # twenty times the hashing itself on a cache-cold request path.
        self._keyed = hmac.new(pepper, digestmod=hashlib.sha256)
        self._master = self._digest(master_key) if master_key else None
        self._by_hash: dict[bytes, ApiKey] = {}
        self._version = -1

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
        await self.refresh(force=True)
        return IssuedKey(record, secret)

    async def revoke(self, key_id: str) -> ApiKey | None:
        revoked = await self._store.revoke(key_id, at=datetime.now(UTC))
        await self.refresh(force=True)
        return revoked

    async def list(self, tenant: str | None = None) -> list[ApiKey]:
        return await self._store.list(tenant=tenant)

    async def refresh(self, *, force: bool = False) -> None:
        """Reload the cache if the store changed since the last load."""
        version = await self._store.version()
        if version == self._version and not force:
            return
        keys = await self._store.list()
        self._by_hash = {k.key_hash: k for k in keys}
        self._version = version

    async def watch(self, interval_s: float = 0.5) -> None:
        """Poll the store's change counter forever (a lifespan task)."""
        while True:
            await anyio.sleep(interval_s)
            # A storage outage keeps the last good cache: keys keep working meanwhile.
            try:
                await self.refresh()
            except StorageError:
                pass
            except Exception:  # a poller that dies would freeze the cache, or stop the app
                log.exception("key cache refresh failed")

    def authenticate(self, presented: str | None) -> Principal:
        """The principal for a presented key, or one uniform 401 whatever was wrong.

        Raises:
            InvalidApiKeyError: missing, unknown, revoked or expired.
        """
        if not presented:
            raise InvalidApiKeyError(INVALID_KEY_MESSAGE)
        digest = self._digest(presented)
        if self._master is not None and hmac.compare_digest(digest, self._master):
            return Principal()
        key = self._by_hash.get(digest)
        if key is None or not key.usable_at(datetime.now(UTC)):
            raise InvalidApiKeyError(INVALID_KEY_MESSAGE)
        return Principal(key)
