"""The storage contract: every database backend behaves the same (memory, SQLite, PostgreSQL).

The counters' contract (memory and Redis) is in test_counters.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import msgspec
import pytest

from aperture.storage import (
    ApiKey,
    AuditAttempt,
    AuditEvent,
    AuditImage,
    AuditQuery,
    AuditUsage,
    ConsoleSession,
    RecordExistsError,
    RecordNotFoundError,
    Storage,
    UsageRow,
    UsageTotals,
    audit_time,
    open_storage,
)
from aperture.storage.base import DocumentStore

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'aperture.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database several gateway instances can share (memory stores are per process)."""
    return backend_url(request, tmp_path)


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    async with await open_storage(database_url, None, migrate=True) as opened:
        yield opened


def key(n: int, **fields: object) -> ApiKey:
    defaults: dict[str, object] = {
        "id": f"key{n}",
        "name": f"key number {n}",
        "key_hash": bytes([n]) * 32,
        "created_at": T0 + timedelta(minutes=n),
    }
    return msgspec.convert({**defaults, **fields}, ApiKey, from_attributes=True)


def event(n: int, **fields: object) -> AuditEvent:
    values: dict[str, object] = {
        "request_id": f"req-{n:05d}",
        "time": audit_time(T0 + timedelta(seconds=n)),
        "key_id": f"key{n % 2}",
        "tenant": f"tenant{n % 3}",
        "endpoint": "/v1/chat/completions",
        "model": "gpt-4o" if n % 2 else "claude",
        "provider": "openai",
        "upstream_model": "gpt-4o-2024-08-06",
        "attempts": 1,
        "status": 200 if n % 4 else 429,
        "error_code": None if n % 4 else "rate_limit_exceeded",
        "latency_ms": 12.5,
        **fields,
    }
    return AuditEvent(**values)  # type: ignore[arg-type]  # test data built as a dict


# --- keys ----------------------------------------------------------------------------------


async def test_a_created_key_is_found_by_its_hash_with_every_field(storage: Storage) -> None:
    created = key(
        1,
        tenant="acme",
        models=("gpt-4o", "claude-sonnet-4-5"),
        rpm=60,
        tpm=100_000,
        budget_usd=5.0,
        budget_tokens=1_000_000,
        budget_period="monthly",
        expires_at=T0 + timedelta(days=30),
    )
    await storage.keys.create(created)

    assert await storage.keys.get_by_hash(created.key_hash) == created
    assert await storage.keys.get_by_hash(b"\x00" * 32) is None


async def test_an_id_or_hash_is_never_stored_twice(storage: Storage) -> None:
    await storage.keys.create(key(1))
    before = await storage.keys.version()

    with pytest.raises(RecordExistsError):
        await storage.keys.create(key(1, key_hash=b"other" * 8))
    with pytest.raises(RecordExistsError):
        await storage.keys.create(key(2, key_hash=key(1).key_hash))

    assert await storage.keys.version() == before
    assert [k.id for k in await storage.keys.list()] == ["key1"]


async def test_keys_are_listed_oldest_first_and_by_tenant(storage: Storage) -> None:
    for n, tenant in ((3, "a"), (1, "b"), (2, "a")):
        await storage.keys.create(key(n, tenant=tenant))

    assert [k.id for k in await storage.keys.list()] == ["key1", "key2", "key3"]
    assert [k.id for k in await storage.keys.list(tenant="a")] == ["key2", "key3"]
    assert await storage.keys.list(tenant="nobody") == []


async def test_revoking_is_recorded_once_and_bumps_the_version(storage: Storage) -> None:
    await storage.keys.create(key(1))
    version = await storage.keys.version()

    revoked = await storage.keys.revoke("key1", at=T0 + timedelta(hours=1))
    assert revoked is not None
    assert revoked.revoked_at == T0 + timedelta(hours=1)
    assert not revoked.usable_at(T0 + timedelta(hours=2))
    assert await storage.keys.get_by_hash(key(1).key_hash) == revoked
    assert await storage.keys.version() == version + 1

    again = await storage.keys.revoke("key1", at=T0 + timedelta(hours=5))
    assert again == revoked  # the first revocation time stands
    assert await storage.keys.version() == version + 1
    assert await storage.keys.revoke("nope", at=T0) is None


async def test_every_key_change_grows_the_version(storage: Storage) -> None:
    versions = [await storage.keys.version()]
    for n in range(3):
        await storage.keys.create(key(n))
        versions.append(await storage.keys.version())
    await storage.keys.revoke("key0", at=T0)
    versions.append(await storage.keys.version())

    assert versions == sorted(set(versions))


# --- routes and models ---------------------------------------------------------------------


@pytest.fixture(params=["routes", "models"])
def documents(request: pytest.FixtureRequest, storage: Storage) -> DocumentStore:
    store: DocumentStore = getattr(storage, request.param)
    return store


ROUTE = b'{"id":"vision","model_pattern":"gpt-4o*","strategy":"weighted","providers":[]}'


async def test_documents_are_created_read_replaced_and_deleted(documents: DocumentStore) -> None:
    start = await documents.version()
    created = await documents.put("vision", ROUTE, mode="create")
    assert (created.id, created.body, created.version) == ("vision", ROUTE, start + 1)
    assert await documents.get("vision") == created

    replaced = await documents.put("vision", b'{"id":"vision","weight":2}', mode="replace")
    assert replaced.version == start + 2
    assert replaced.body == b'{"id":"vision","weight":2}'
    assert await documents.get("vision") == replaced

    assert await documents.delete("vision") is True
    assert await documents.get("vision") is None
    assert await documents.delete("vision") is False
    assert await documents.version() == start + 3


async def test_create_and_replace_refuse_and_change_nothing(documents: DocumentStore) -> None:
    await documents.put("a", b"{}")
    version = await documents.version()

    with pytest.raises(RecordExistsError):
        await documents.put("a", b'{"x":1}', mode="create")
    with pytest.raises(RecordNotFoundError):
        await documents.put("b", b"{}", mode="replace")
    with pytest.raises(ValueError, match="JSON object"):
        await documents.put("a", b"[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        await documents.put("a", b"{not json")

    assert await documents.version() == version
    assert [(d.id, d.body) for d in await documents.list()] == [("a", b"{}")]


async def test_upserts_list_by_id_and_versions_order_changes(documents: DocumentStore) -> None:
    for doc_id in ("c", "a", "b", "a"):
        await documents.put(doc_id, b'{"id":"%s"}' % doc_id.encode())

    listed = await documents.list()
    assert [d.id for d in listed] == ["a", "b", "c"]
    by_id = {d.id: d.version for d in listed}
    assert by_id["c"] < by_id["b"] < by_id["a"] == await documents.version()


async def test_routes_and_models_count_their_changes_apart(storage: Storage) -> None:
    models = await storage.models.version()
    await storage.routes.put("r", b"{}")
    assert await storage.models.version() == models


async def test_concurrent_writers_get_distinct_versions(documents: DocumentStore) -> None:
    start = await documents.version()
    written: list[int] = []

    async def put(n: int) -> None:
        written.append((await documents.put(f"doc{n}", b"{}")).version)

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(put, n)

    assert sorted(written) == list(range(start + 1, start + 21))


# --- audit ---------------------------------------------------------------------------------


async def test_audit_appends_are_idempotent_by_request_id(storage: Storage) -> None:
    events = [event(n) for n in range(10)]
    assert await storage.audit.append(events) == 10
    assert await storage.audit.append(events) == 0
    assert await storage.audit.append([event(10), event(10, status=500), event(3)]) == 1
    assert await storage.audit.append([]) == 0

    stored = await storage.audit.query(AuditQuery(limit=None))
    assert len(stored) == 11
    assert next(e for e in stored if e.request_id == "req-00010").status == 200


async def test_audit_events_come_back_exactly_as_written(storage: Storage) -> None:
    rich = event(
        1,
        usage=AuditUsage(prompt_tokens=812, completion_tokens=40, image_tokens_estimate=765),
        text=("Describe this image.", "[EMAIL] asked twice"),
        images=(
            AuditImage(
                sha256="ab" * 32,
                mime="image/png",
                width=640,
                height=480,
                bytes=12_345,
                frames=1,
                source="inline",
            ),
            AuditImage(
                sha256="cd" * 32,
                mime="image/gif",
                width=10,
                height=10,
                bytes=99,
                frames=7,
                source="images.example.com",
            ),
        ),
    )
    await storage.audit.append([rich])
    assert await storage.audit.query(AuditQuery(request_id=rich.request_id)) == [rich]


async def test_the_error_code_filter_matches_the_field_itself(storage: Storage) -> None:
    # A text that spells the field, and codes only LIKE's wildcards would confuse.
    await storage.audit.append(
        [
            event(1, status=502, error_code="upstream_error"),
            event(2, status=200, text=('"error_code":"upstream_error"',)),
            event(3, status=502, error_code="upstreamXerror"),
            event(4, status=502, error_code="upstream_error_2"),
        ]
    )
    found = await storage.audit.query(AuditQuery(error_code="upstream_error"))
    assert [e.request_id for e in found] == ["req-00001"]
    assert await storage.audit.query(AuditQuery(error_code="upstream%")) == []


async def test_an_events_way_through_the_gateway_comes_back_as_written(storage: Storage) -> None:
    routed = event(
        5,
        route="vision-failover",
        tried=(
            AuditAttempt(target="a/m", outcome="upstream_unavailable", latency_ms=3.5),
            AuditAttempt(target="b/m", outcome="ok", latency_ms=120.25),
        ),
        image_changes=("downscaled", "metadata_stripped"),
        image_bytes_saved=12_000,
    )
    await storage.audit.append([routed])
    assert await storage.audit.query(AuditQuery(request_id=routed.request_id)) == [routed]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (AuditQuery(request_id="req-00007"), [7]),
        (AuditQuery(key_id="key1"), [11, 9, 7, 5, 3, 1]),
        (AuditQuery(tenant="tenant2"), [11, 8, 5, 2]),
        (AuditQuery(model="claude"), [10, 8, 6, 4, 2, 0]),
        (AuditQuery(status=429), [8, 4, 0]),
        (AuditQuery(error_code="rate_limit_exceeded"), [8, 4, 0]),
        (AuditQuery(error_code="rate_limit_exceeded", key_id="key1"), []),
        (AuditQuery(since=T0 + timedelta(seconds=9)), [11, 10, 9]),
        (AuditQuery(until=T0 + timedelta(seconds=2)), [1, 0]),
        (AuditQuery(since=T0 + timedelta(seconds=3), until=T0 + timedelta(seconds=5)), [4, 3]),
        (AuditQuery(limit=3), [11, 10, 9]),
        (AuditQuery(limit=0), []),
        (AuditQuery(key_id="key0", tenant="tenant0", status=429), [0]),
        (AuditQuery(tenant="nobody"), []),
    ],
)
async def test_audit_queries_filter_and_answer_newest_first(
    storage: Storage, query: AuditQuery, expected: list[int]
) -> None:
    await storage.audit.append([event(n) for n in range(12)])

    found = await storage.audit.query(query)
    assert [e.request_id for e in found] == [f"req-{n:05d}" for n in expected]


async def test_audit_export_streams_json_lines_oldest_first(storage: Storage) -> None:
    # More than one export page (500 rows), with ties on time broken by request id.
    events = [event(n, time=audit_time(T0 + timedelta(seconds=n // 3))) for n in range(1203)]
    for start in range(0, len(events), 400):
        await storage.audit.append(events[start : start + 400])

    lines = [line async for line in storage.audit.export(AuditQuery(limit=None))]
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    assert [msgspec.json.decode(line, type=AuditEvent) for line in lines] == events

    tenant = [line async for line in storage.audit.export(AuditQuery(tenant="tenant1", limit=700))]
    decoded = [msgspec.json.decode(line, type=AuditEvent) for line in tenant]
    assert decoded == [e for e in events if e.tenant == "tenant1"][:700]


# --- usage ledger --------------------------------------------------------------------------


def usage(request_id: str, kind: str, amount: int, **fields: object) -> UsageRow:
    values = {"request_id": request_id, "kind": kind, "created_at": T0, "amount_micros": amount}
    return msgspec.convert({**values, **fields}, UsageRow, from_attributes=True)


async def test_the_ledger_keeps_one_row_per_request_and_kind(storage: Storage) -> None:
    rows = [usage("r1", "reserve", 900), usage("r1", "settle", 750, prompt_tokens=100)]
    assert await storage.ledger.append(rows) == 2
    assert await storage.ledger.append(rows) == 0
    assert (
        await storage.ledger.append([usage("r1", "settle", 9_999), usage("r2", "settle", 1)]) == 1
    )

    assert await storage.ledger.for_request("r1") == rows
    assert await storage.ledger.for_request("nope") == []


async def test_ledger_totals_sum_spend_kinds_within_the_filters(storage: Storage) -> None:
    later = T0 + timedelta(days=1)
    await storage.ledger.append(
        [
            usage("a", "reserve", 5_000, key_id="k1"),  # in flight: not spend
            usage("a", "settle", 1_000, key_id="k1", tenant="t", prompt_tokens=10),
            usage("b", "settle", 2_000, key_id="k1", tenant="t", completion_tokens=5),
            usage("b", "refund", -500, key_id="k1", tenant="t"),
            usage("c", "settle", 4_000, key_id="k2", tenant="t", created_at=later),
            usage("c", "release", 4_000, key_id="k2", tenant="t", created_at=later),
        ]
    )

    assert await storage.ledger.totals(key_id="k1") == UsageTotals(
        amount_micros=2_500, prompt_tokens=10, completion_tokens=5
    )
    assert (await storage.ledger.totals(tenant="t")).amount_micros == 6_500
    assert (await storage.ledger.totals(since=later)).amount_micros == 4_000
    assert (await storage.ledger.totals(until=later)).amount_micros == 2_500
    assert await storage.ledger.totals(key_id="nobody") == UsageTotals()


# --- console sessions -----------------------------------------------------------------------


def console_session(n: int, **fields: object) -> ConsoleSession:
    values: dict[str, object] = {
        "id_hash": bytes([n]) * 32,
        "principal": f"key{n}",
        "csrf": f"csrf-{n}",
        "created_at": T0,
        "expires_at": T0 + timedelta(hours=24),
        "idle_until": T0 + timedelta(hours=8),
    }
    values.update(fields)
    return msgspec.convert(values, ConsoleSession, from_attributes=False, strict=False)


async def test_a_console_session_comes_back_by_its_hash_with_every_field(
    storage: Storage,
) -> None:
    session = console_session(1)
    await storage.sessions.create(session)
    assert await storage.sessions.get(session.id_hash, now=T0) == session
    assert await storage.sessions.get(bytes(32), now=T0) is None
    with pytest.raises(RecordExistsError):
        await storage.sessions.create(console_session(1, principal="other"))
    assert await storage.sessions.get(session.id_hash, now=T0) == session


async def test_a_console_session_ends_at_its_idle_or_its_absolute_end(storage: Storage) -> None:
    idle = console_session(1)
    capped = console_session(2, expires_at=T0 + timedelta(hours=1))
    for session in (idle, capped):
        await storage.sessions.create(session)
    hour = timedelta(hours=1)
    assert await storage.sessions.get(capped.id_hash, now=T0 + hour) is None
    assert await storage.sessions.get(idle.id_hash, now=T0 + 8 * hour - timedelta(seconds=1))
    assert await storage.sessions.get(idle.id_hash, now=T0 + 8 * hour) is None


async def test_touching_moves_the_idle_end_but_never_past_the_absolute_end(
    storage: Storage,
) -> None:
    session = console_session(1)
    await storage.sessions.create(session)
    assert await storage.sessions.touch(session.id_hash, idle_until=T0 + timedelta(hours=12))
    moved = await storage.sessions.get(session.id_hash, now=T0 + timedelta(hours=10))
    assert moved is not None and moved.idle_until == T0 + timedelta(hours=12)
    assert await storage.sessions.touch(session.id_hash, idle_until=T0 + timedelta(hours=30))
    capped = await storage.sessions.get(session.id_hash, now=T0)
    assert capped is not None and capped.idle_until == session.expires_at
    assert not await storage.sessions.touch(bytes(32), idle_until=T0)


async def test_signing_out_and_purging_forget_console_sessions(storage: Storage) -> None:
    ended = console_session(1, idle_until=T0 + timedelta(minutes=5))
    live, out = console_session(2), console_session(3)
    for session in (ended, live, out):
        await storage.sessions.create(session)
    assert await storage.sessions.delete(out.id_hash)
    assert not await storage.sessions.delete(out.id_hash)
    assert await storage.sessions.get(out.id_hash, now=T0) is None
    assert await storage.sessions.purge(T0 + timedelta(hours=1)) == 1
    assert await storage.sessions.get(ended.id_hash, now=T0) is None  # gone, not just ended
    assert await storage.sessions.get(live.id_hash, now=T0) == live


# --- several instances over one database ---------------------------------------------------


async def test_a_second_instance_sees_changes_through_the_versions(
    shared_database_url: str,
) -> None:
    url = shared_database_url
    async with (
        await open_storage(url, None, migrate=True) as one,
        await open_storage(url, None, migrate=True) as two,
    ):
        keys, routes = await two.keys.version(), await two.routes.version()
        await one.keys.create(key(1))
        await one.routes.put("vision", ROUTE)
        assert await two.keys.version() == keys + 1
        assert await two.routes.version() == routes + 1
        assert [d.body for d in await two.routes.list()] == [ROUTE]

        await two.keys.revoke("key1", at=T0)
        assert await one.keys.version() == keys + 2
        revoked = await one.keys.get_by_hash(key(1).key_hash)
        assert revoked is not None
        assert revoked.revoked_at == T0


async def test_a_console_session_made_by_one_instance_is_known_to_another(
    shared_database_url: str,
) -> None:
    url = shared_database_url
    async with (
        await open_storage(url, None, migrate=True) as one,
        await open_storage(url, None, migrate=True) as two,
    ):
        session = console_session(7)
        await one.sessions.create(session)
        assert await two.sessions.get(session.id_hash, now=T0) == session
        assert await two.sessions.delete(session.id_hash)
        assert await one.sessions.get(session.id_hash, now=T0) is None
