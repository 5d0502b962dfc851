"""The key ring over real stores: two rings on one database behave as two instances do.

Each ring reads its store through ``Counting``, a KeyStore of the test's own that passes every
call to the real SQLite or PostgreSQL store and counts it, so the tests can say how often a
miss reached the database.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path

import anyio
import pytest

from aperture.errors import InvalidApiKeyError, ServiceUnavailableError
from aperture.governance.keys import NEGATIVE_TTL_S, KeyRing
from aperture.storage import ApiKey, KeyStore, open_storage
from aperture.storage.postgres import connect
from tests.contract.services import fresh_postgres_url, postgres_server  # noqa: F401

pytestmark = pytest.mark.anyio

PEPPER = b"pepper"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Counting:
    """The real store, every call counted; ``hang`` makes reads wait forever (a stalled DB)."""

    def __init__(self, inner: KeyStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.hang = False

    async def _read(self, name: str) -> None:
        self.calls[name] += 1
        if self.hang:
            await anyio.sleep_forever()

    async def create(self, key: ApiKey) -> None:
        self.calls["create"] += 1
        await self.inner.create(key)

    async def get_by_hash(self, key_hash: bytes) -> ApiKey | None:
        await self._read("get_by_hash")
        return await self.inner.get_by_hash(key_hash)

    async def list(self, *, tenant: str | None = None) -> list[ApiKey]:
        await self._read("list")
        return await self.inner.list(tenant=tenant)

    async def revoke(self, key_id: str, *, at: datetime) -> ApiKey | None:
        self.calls["revoke"] += 1
        return await self.inner.revoke(key_id, at=at)

    async def version(self) -> int:
        await self._read("version")
        return await self.inner.version()

    @property
    def reads(self) -> int:
        return self.calls["version"] + self.calls["list"] + self.calls["get_by_hash"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'keys.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
async def two_instances(database_url: str) -> AsyncIterator[tuple[KeyRing, KeyRing, Counting]]:
    """Ring A and ring B on one database, each with its own connections; B's store counted."""
    async with (
        await open_storage(database_url, migrate=True) as one,
        await open_storage(database_url) as two,
    ):
        counted = Counting(two.keys)
        a, b = KeyRing(one.keys, PEPPER, None), KeyRing(counted, PEPPER, None)
        await a.refresh(force=True)
        await b.refresh(force=True)
        counted.calls.clear()
        yield a, b, counted


def random_key() -> str:
    return f"ap_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


async def rename_table(url: str, old: str, new: str) -> None:
    """An outage as the gateway sees one: a table it reads from is suddenly not there."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30) as outside:
            outside.execute(f"ALTER TABLE {old} RENAME TO {new}")
        return
    db = connect(url)
    try:
        async with db.write() as conn:
            await conn.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")
    finally:
        await db.close()


async def test_a_key_issued_on_one_instance_works_at_once_on_another(
    two_instances: tuple[KeyRing, KeyRing, Counting],
) -> None:
    a, b, counted = two_instances
    issued = await a.issue("ci", tenant="acme")
    principal = await b.authenticate(issued.secret)  # no poll has run on B
    assert (principal.key_id, principal.tenant) == (issued.record.id, "acme")
    assert (counted.calls["version"], counted.calls["list"]) == (1, 1)
    await b.authenticate(issued.secret)  # cached now
    assert counted.reads == 2


async def test_concurrent_misses_for_one_key_share_one_lookup(
    two_instances: tuple[KeyRing, KeyRing, Counting],
) -> None:
    a, b, counted = two_instances
    issued = await a.issue("shared")
    ids: list[str | None] = []

    async def use() -> None:
        ids.append((await b.authenticate(issued.secret)).key_id)

    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(use)
    assert ids == [issued.record.id] * 50
    assert (counted.calls["version"], counted.calls["list"]) == (1, 1)


async def test_a_flood_of_random_keys_makes_a_bounded_number_of_reads(
    two_instances: tuple[KeyRing, KeyRing, Counting],
) -> None:
    _, b, counted = two_instances
    refused = 0

    async def attack(key: str) -> None:
        nonlocal refused
        with pytest.raises(InvalidApiKeyError):
            await b.authenticate(key)
        refused += 1

    async with anyio.create_task_group() as group:
        for _ in range(500):
            group.start_soon(attack, random_key())
    assert refused == 500
    # One catch-up for the first arrivals, one for everyone who came while it ran: however
    # many keys, concurrent misses share the reads, and nothing changed, so no reload.
    assert counted.calls["version"] <= 3
    assert counted.calls["list"] == 0
    assert counted.calls["get_by_hash"] == 0


async def test_a_repeated_unknown_key_is_remembered_briefly(
    two_instances: tuple[KeyRing, KeyRing, Counting],
) -> None:
    _, b, counted = two_instances
    key = random_key()
    for _ in range(200):
        with pytest.raises(InvalidApiKeyError):
            await b.authenticate(key)
    assert counted.reads == 1
    await anyio.sleep(NEGATIVE_TTL_S + 0.1)
    with pytest.raises(InvalidApiKeyError):
        await b.authenticate(key)
    assert counted.reads == 2


@pytest.mark.parametrize(
    "presented",
    [None, "", "wrong", "sk-master", "ap_000000000000_nope", "ap_ABCDEF012345_" + "a" * 43,
     random_key() + "x", random_key()[:-1], " " + random_key(), "Bearer " + random_key()],
)  # fmt: skip
async def test_malformed_keys_never_reach_the_store(
    two_instances: tuple[KeyRing, KeyRing, Counting], presented: str | None
) -> None:
    _, b, counted = two_instances
    with pytest.raises(InvalidApiKeyError):
        await b.authenticate(presented)
    assert counted.reads == 0


async def test_a_revocation_reaches_the_other_instance_through_its_poll(
    two_instances: tuple[KeyRing, KeyRing, Counting],
) -> None:
    a, b, _ = two_instances
    issued = await a.issue("short-lived")
    await b.authenticate(issued.secret)  # B learned it through a miss, not a poll
    await a.revoke(issued.record.id)
    async with anyio.create_task_group() as group:
        group.start_soon(b.watch, 0.05)
        started = time.monotonic()
        while True:
            try:
                await b.authenticate(issued.secret)
            except InvalidApiKeyError:
                break
            assert time.monotonic() - started < 5, "the revoked key still works on B"
            await anyio.sleep(0.02)
        group.cancel_scope.cancel()


async def test_a_store_outage_during_a_miss_is_503_and_cached_keys_keep_working(
    two_instances: tuple[KeyRing, KeyRing, Counting], database_url: str
) -> None:
    a, b, _ = two_instances
    known = await a.issue("known")
    await b.authenticate(known.secret)
    await rename_table(database_url, "changes", "changes_away")
    try:
        with pytest.raises(ServiceUnavailableError) as caught:
            await b.authenticate(random_key())
        assert (caught.value.status, caught.value.code) == (503, "service_unavailable")
        assert caught.value.headers == {"retry-after": "1"}
        assert (await b.authenticate(known.secret)).key_id == known.record.id
        with pytest.raises(InvalidApiKeyError):
            await b.authenticate("ap_not_even_close")  # still no store needed to refuse
    finally:
        await rename_table(database_url, "changes_away", "changes")
    with pytest.raises(InvalidApiKeyError):
        await b.authenticate(random_key())  # the store answers again: a plain 401


async def test_a_store_that_hangs_during_a_miss_is_503_within_the_deadline(
    tmp_path: Path,
) -> None:
    async with await open_storage(f"sqlite:///{tmp_path / 'keys.db'}", migrate=True) as store:
        counted = Counting(store.keys)
        ring = KeyRing(counted, PEPPER, None, lookup_timeout_s=0.3)
        await ring.refresh(force=True)
        counted.hang = True
        started = time.monotonic()
        outcomes = await _gather(ring, [random_key() for _ in range(20)])
        assert time.monotonic() - started < 5
        assert {type(outcome) for outcome in outcomes} == {ServiceUnavailableError}


async def test_a_waiter_takes_over_when_the_caller_looking_up_is_cancelled(
    two_instances: tuple[KeyRing, KeyRing, Counting],
) -> None:
    a, b, counted = two_instances
    issued = await a.issue("patient")
    counted.hang = True
    found: list[str | None] = []

    async def leader() -> None:
        await b.authenticate(issued.secret)

    async def waiter() -> None:
        found.append((await b.authenticate(issued.secret)).key_id)

    leading = anyio.CancelScope()
    async with anyio.create_task_group() as group:
        group.start_soon(_within, leading, leader)
        await anyio.sleep(0.1)  # the leader's read is stalled now
        group.start_soon(waiter)
        await anyio.sleep(0.1)  # the waiter waits on the leader's lookup
        counted.hang = False
        leading.cancel()  # the client behind the leader went away
    assert found == [issued.record.id]
    assert counted.calls["version"] == 2


async def _within(scope: anyio.CancelScope, work: Callable[[], Awaitable[None]]) -> None:
    with scope:
        await work()


async def _gather(ring: KeyRing, keys: list[str]) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = []

    async def one(key: str) -> None:
        try:
            await ring.authenticate(key)
            outcomes.append(None)
        except Exception as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as group:
        for key in keys:
            group.start_soon(one, key)
    return outcomes


async def test_a_key_written_is_issued_even_when_the_reload_after_it_stalls(
    tmp_path: Path,
) -> None:
    async with await open_storage(f"sqlite:///{tmp_path / 'keys.db'}", migrate=True) as store:
        counted = Counting(store.keys)
        ring = KeyRing(counted, PEPPER, None, lookup_timeout_s=0.3)
        await ring.refresh(force=True)
        counted.hang = True  # the write lands, the reads after it stall
        started = time.monotonic()
        issued = await ring.issue("written")  # a 503 here would invite a second key
        assert time.monotonic() - started < 5
        assert [key.id for key in await store.keys.list()] == [issued.record.id]
        counted.hang = False
        # The next miss catches up with the store: the key works.
        assert (await ring.authenticate(issued.secret)).key_id == issued.record.id
