"""Console sessions over a real store: two ``ConsoleSessions`` on one store are two instances.

Clocks are injected (the wall clock for the session's ends, a monotonic one for the cache),
so expiry and the cache's bound are stepped through, never waited for.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aperture.errors import ServiceUnavailableError
from aperture.governance.console_sessions import ConsoleSessions
from aperture.governance.keys import KeyRing, Principal
from aperture.storage import (
    ConsoleSession,
    ConsoleSessionStore,
    Storage,
    StorageError,
    open_storage,
)

pytestmark = pytest.mark.anyio

PEPPER = b"pepper"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clocks:
    def __init__(self) -> None:
        self.wall = datetime(2026, 1, 1, tzinfo=UTC)
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def step(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


class Flaky:
    """The real store, until ``down`` makes every call fail as an outage would."""

    def __init__(self, inner: ConsoleSessionStore) -> None:
        self.inner = inner
        self.down = False
        self.reads = 0

    def _check(self) -> None:
        if self.down:
            raise StorageError("sqlite failed: the disk is gone")

    async def create(self, session: ConsoleSession) -> None:
        self._check()
        await self.inner.create(session)

    async def get(self, id_hash: bytes, *, now: datetime) -> ConsoleSession | None:
        self.reads += 1
        self._check()
        return await self.inner.get(id_hash, now=now)

    async def touch(self, id_hash: bytes, *, idle_until: datetime) -> bool:
        self._check()
        return await self.inner.touch(id_hash, idle_until=idle_until)

    async def delete(self, id_hash: bytes) -> bool:
        self._check()
        return await self.inner.delete(id_hash)

    async def purge(self, before: datetime) -> int:
        self._check()
        return await self.inner.purge(before)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    async with await open_storage(f"sqlite:///{tmp_path / 'a.db'}", migrate=True) as storage:
        yield storage


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


async def ring(storage: Storage, master: str = "sk-master") -> KeyRing:
    keys = KeyRing(storage.keys, PEPPER, master)
    await keys.refresh(force=True)
    return keys


def instance(
    store: ConsoleSessionStore, keys: KeyRing, clocks: Clocks, *, cache_s: float = 2.0
) -> ConsoleSessions:
    return ConsoleSessions(
        store,
        keys,
        idle_s=3600,
        max_s=4 * 3600,
        cache_s=cache_s,
        clock=clocks.monotonic,
        now=clocks.now,
    )


async def test_the_store_holds_only_the_hash_of_the_id_and_never_a_secret(
    storage: Storage, clocks: Clocks
) -> None:
    keys = await ring(storage)
    admin = await keys.issue("ops", admin=True)
    sessions = instance(storage.sessions, keys, clocks)
    opened = await sessions.open(await keys.authenticate(admin.secret))
    stored = await storage.sessions.get(
        hashlib.sha256(opened.id.encode()).digest(), now=clocks.now()
    )
    assert stored is not None
    assert stored.principal == admin.record.id and stored.csrf == opened.csrf
    assert opened.id.encode() not in stored.id_hash and admin.secret not in stored.principal
    live = await sessions.get(opened.id)
    assert live is not None and live.principal.key_id == admin.record.id
    assert await sessions.get("forged") is None and await sessions.get(None) is None


async def test_a_master_session_names_the_master_key_without_revealing_it(
    storage: Storage, clocks: Clocks
) -> None:
    keys = await ring(storage)
    opened = await instance(storage.sessions, keys, clocks).open(Principal())
    stored = await storage.sessions.get(
        hashlib.sha256(opened.id.encode()).digest(), now=clocks.now()
    )
    assert stored is not None and stored.principal.startswith("master:")
    assert "sk-master" not in stored.principal
    # After the master key changes (a restart with another), its old sessions end.
    other = instance(storage.sessions, await ring(storage, "sk-rotated"), clocks)
    assert await other.get(opened.id) is None
    same = instance(storage.sessions, await ring(storage), clocks)
    found = await same.get(opened.id)
    assert found is not None and found.principal.is_admin and found.principal.key is None


async def test_a_session_made_on_one_instance_works_on_another_and_signs_out_everywhere(
    storage: Storage, clocks: Clocks
) -> None:
    a = instance(storage.sessions, await ring(storage), clocks)
    b = instance(storage.sessions, await ring(storage), clocks)
    opened = await a.open(Principal())
    on_b = await b.get(opened.id)
    assert on_b is not None and on_b.csrf == opened.csrf
    assert await a.get(opened.id) is not None  # cached on a now
    await b.close(on_b)
    assert await b.get(opened.id) is None  # at once where it was signed out
    # a trusts its cached copy for cache_s at most, then reads the store again.
    clocks.step(2.0)
    assert await a.get(opened.id) is None


async def test_revoking_the_key_ends_its_sessions_on_every_instance(
    storage: Storage, clocks: Clocks
) -> None:
    keys_a, keys_b = await ring(storage), await ring(storage)
    admin = await keys_a.issue("ops", admin=True)
    a = instance(storage.sessions, keys_a, clocks)
    b = instance(storage.sessions, keys_b, clocks)
    opened = await a.open(await keys_a.authenticate(admin.secret))
    assert await b.get(opened.id) is not None  # b catches up with a key it had not seen
    await keys_a.revoke(admin.record.id)
    assert await a.get(opened.id) is None
    await keys_b.refresh()  # what b's key cache poll does every half second
    assert await b.get(opened.id) is None


async def test_use_keeps_a_session_alive_until_its_absolute_end(
    storage: Storage, clocks: Clocks
) -> None:
    sessions = instance(storage.sessions, await ring(storage), clocks)
    opened = await sessions.open(Principal())
    for _ in range(7):  # every 50 minutes, for 5 h 50 min: each use moves the idle end on
        clocks.step(50 * 60)
        if clocks.wall - datetime(2026, 1, 1, tzinfo=UTC) < timedelta(hours=4):
            assert await sessions.get(opened.id) is not None
        else:
            assert await sessions.get(opened.id) is None  # past max_s however used


async def test_an_unused_session_ends_after_the_idle_time(storage: Storage, clocks: Clocks) -> None:
    sessions = instance(storage.sessions, await ring(storage), clocks)
    opened = await sessions.open(Principal())
    clocks.step(3599)
    assert await sessions.get(opened.id) is not None
    clocks.step(3601)
    assert await sessions.get(opened.id) is None
    fresh = instance(storage.sessions, await ring(storage), clocks)
    assert await fresh.get(opened.id) is None


async def test_the_hot_path_reads_the_store_once_per_cache_period(
    storage: Storage, clocks: Clocks
) -> None:
    store = Flaky(storage.sessions)
    sessions = instance(store, await ring(storage), clocks)
    opened = await sessions.open(Principal())
    for _ in range(20):
        assert await sessions.get(opened.id) is not None
    assert store.reads == 0  # opening cached it
    clocks.step(2.0)
    assert await sessions.get(opened.id) is not None
    assert store.reads == 1


async def test_with_the_store_down_sign_in_is_503_and_cached_sessions_go_on(
    storage: Storage, clocks: Clocks
) -> None:
    store = Flaky(storage.sessions)
    keys = await ring(storage)
    here = instance(store, keys, clocks)
    elsewhere = instance(store, keys, clocks)
    opened = await here.open(Principal())
    store.down = True
    with pytest.raises(ServiceUnavailableError, match="session store"):
        await here.open(Principal())
    clocks.step(5.0)  # past the cache period: the store is asked, fails, the copy stands
    live = await here.get(opened.id)
    assert live is not None and live.principal.is_admin
    with pytest.raises(ServiceUnavailableError):  # never seen here: it may be valid
        await elsewhere.get(opened.id)
    with pytest.raises(ServiceUnavailableError):
        await here.close(live)
    store.down = False
    assert await elsewhere.get(opened.id) is not None
