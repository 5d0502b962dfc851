"""Every SQL store, written once in SQLAlchemy Core for SQLite and PostgreSQL alike.

The backend modules (``sqlite.py``, ``postgres.py``) only connect and ``sqlengine.py`` holds
the engines; every statement that reads or writes a table lives here. Writes that bump a
change counter take the counter's row first, always, so writers of a collection queue on
one row (no deadlocks) and commit in version order (a poller that sees version N sees every
change up to N).
"""

from __future__ import annotations

import builtins
import hmac
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from aperture.storage.base import (
    Database,
    PutMode,
    RecordExistsError,
    RecordNotFoundError,
)
from aperture.storage.records import (
    SPEND_KINDS,
    ApiKey,
    AuditEvent,
    AuditQuery,
    ConsoleSession,
    Document,
    ResponseBlob,
    StoredResponse,
    UsageRow,
    UsageTotals,
    check_json_object,
)
from aperture.storage.sqlengine import SqlDatabase, run_migrations
from aperture.storage.tables import (
    api_keys,
    audit_events,
    changes,
    console_sessions,
    model_documents,
    response_blobs,
    response_images,
    route_documents,
    stored_responses,
    usage_ledger,
)

__all__ = ["open_migrated", "open_stores"]

_EXPORT_PAGE = 500
_MODELS = msgspec.json.Decoder(tuple[str, ...])
_EVENT = msgspec.json.Decoder(AuditEvent)
_JSON = msgspec.json.Encoder()


def _encode(event: AuditEvent) -> str:
    return _JSON.encode(event).decode()


_SQLITE_AUDIT_INSERT = (
    f"INSERT OR IGNORE INTO {audit_events.name} ({', '.join(c.name for c in audit_events.c)})"
    f" VALUES ({', '.join('?' for _ in audit_events.c)})"
)


class _Unchanged(Exception):
    """Raised inside a write to roll back a change-counter bump that turned out needless."""


async def _bump(conn: AsyncConnection, collection: str) -> int:
    result = await conn.execute(
        sa.update(changes)
        .where(changes.c.collection == collection)
        .values(version=changes.c.version + 1)
        .returning(changes.c.version)
    )
    return int(result.scalar_one())


async def _version(db: SqlDatabase, collection: str) -> int:
    async with db.read() as conn:
        result = await conn.execute(
            sa.select(changes.c.version).where(changes.c.collection == collection)
        )
        return int(result.scalar_one())


def _key(row: sa.Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        key_hash=bytes(row.key_hash),
        created_at=row.created_at,
        tenant=row.tenant,
        models=None if row.models is None else _MODELS.decode(row.models),
        rpm=row.rpm,
        tpm=row.tpm,
        budget_usd=row.budget_usd,
        budget_tokens=row.budget_tokens,
        budget_period=row.budget_period,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        admin=bool(row.admin),
    )


class SqlKeyStore:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def create(self, key: ApiKey) -> None:
        values = msgspec.structs.asdict(key)
        values["models"] = None if key.models is None else msgspec.json.encode(key.models).decode()
        try:
            async with self._db.write() as conn:
                await _bump(conn, "keys")
                inserted = await conn.execute(
                    self._db.insert_ignoring(api_keys).values(values).returning(api_keys.c.id)
                )
                if inserted.first() is None:
                    raise _Unchanged
        except _Unchanged:
            raise RecordExistsError(f"key {key.id!r} (or its hash) already exists") from None

    async def get_by_hash(self, key_hash: bytes) -> ApiKey | None:
        async with self._db.read() as conn:
            result = await conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == key_hash))
            row = result.first()
        # The index found it; compare_digest re-checks without a timing signal, per §5.
        if row is None or not hmac.compare_digest(bytes(row.key_hash), key_hash):
            return None
        return _key(row)

    async def list(self, *, tenant: str | None = None) -> builtins.list[ApiKey]:
        query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if tenant is not None:
            query = query.where(api_keys.c.tenant == tenant)
        async with self._db.read() as conn:
            return [_key(row) for row in await conn.execute(query)]

    async def revoke(self, key_id: str, *, at: datetime) -> ApiKey | None:
        try:
            async with self._db.write() as conn:
                await _bump(conn, "keys")
                updated = await conn.execute(
                    sa.update(api_keys)
                    .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                    .values(revoked_at=at)
                    .returning(*api_keys.c)
                )
                row = updated.first()
                if row is None:
                    raise _Unchanged
                return _key(row)
        except _Unchanged:
            pass
        async with self._db.read() as conn:  # unknown, or revoked earlier: that time stands
            row = (await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))).first()
        return None if row is None else _key(row)

    async def version(self) -> int:
        return await _version(self._db, "keys")


def _document(row: sa.Row[Any]) -> Document:
    return Document(
        id=row.id, body=row.body.encode(), version=row.version, updated_at=row.updated_at
    )


class SqlDocumentStore:
    """Routes or models: one class, two tables, two change counters."""

    def __init__(self, db: SqlDatabase, table: sa.Table, collection: str) -> None:
        self._db = db
        self._table = table
        self._collection = collection

    async def get(self, doc_id: str) -> Document | None:
        async with self._db.read() as conn:
            result = await conn.execute(sa.select(self._table).where(self._table.c.id == doc_id))
            row = result.first()
        return None if row is None else _document(row)

    async def list(self) -> builtins.list[Document]:
        async with self._db.read() as conn:
            result = await conn.execute(sa.select(self._table).order_by(self._table.c.id))
            return [_document(row) for row in result]

    async def put(self, doc_id: str, body: bytes, *, mode: PutMode = "upsert") -> Document:
        check_json_object(body)
        table = self._table
        try:
            async with self._db.write() as conn:
                version = await _bump(conn, self._collection)
                now = datetime.now(UTC)
                values = {"body": body.decode(), "version": version, "updated_at": now}
                if mode == "create":
                    query = self._db.insert_ignoring(table).values(id=doc_id, **values)
                elif mode == "replace":
                    query = sa.update(table).where(table.c.id == doc_id).values(values)
                else:
                    query = self._db.upsert(table, "id", {"id": doc_id, **values})
                row = (await conn.execute(query.returning(*table.c))).first()
                if row is None:
                    raise _Unchanged
                return _document(row)
        except _Unchanged:
            if mode == "create":
                raise RecordExistsError(f"{doc_id!r} already exists") from None
            raise RecordNotFoundError(f"{doc_id!r} does not exist") from None

    async def delete(self, doc_id: str) -> bool:
        try:
            async with self._db.write() as conn:
                await _bump(conn, self._collection)
                result = await conn.execute(
                    sa.delete(self._table)
                    .where(self._table.c.id == doc_id)
                    .returning(self._table.c.id)
                )
                if result.first() is None:
                    raise _Unchanged
                return True
        except _Unchanged:
            return False

    async def version(self) -> int:
        return await _version(self._db, self._collection)


class SqlAuditStore:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def append(self, events: Sequence[AuditEvent]) -> int:
        # reversed: the first of duplicate ids wins, as in SQL
        rows = {e.request_id: e for e in reversed(events)}
        if not rows:
            return 0
        values = [
            (e.request_id, e.timestamp_ms, e.key_id, e.tenant, e.model, e.status, _encode(e))
            for e in rows.values()
        ]
        async with self._db.write() as conn:
            if self._db.dialect == "sqlite":
                # One prepared statement for the batch (the hot path's writer): the
                # rowcount of an executemany is the rows it inserted.
                result = await conn.exec_driver_sql(_SQLITE_AUDIT_INSERT, values)
                return max(0, result.rowcount)
            insert = self._db.insert_ignoring(audit_events).returning(audit_events.c.request_id)
            columns = [c.name for c in audit_events.c]
            result = await conn.execute(
                insert, [dict(zip(columns, v, strict=True)) for v in values]
            )
            return len(result.all())

    def _select(self, query: AuditQuery) -> sa.Select[str]:
        t = audit_events
        filters: builtins.list[sa.ColumnElement[bool]] = [
            column == wanted
            for column, wanted in (
                (t.c.request_id, query.request_id),
                (t.c.key_id, query.key_id),
                (t.c.tenant, query.tenant),
                (t.c.model, query.model),
                (t.c.status, query.status),
            )
            if wanted is not None
        ]
        if query.error_code is not None:
            # No column of its own (no migration for a console filter): the code as msgspec
            # writes it into the body. Inside a string value every quote is escaped, so the
            # pattern matches only the event's own field; the other filters narrow first.
            code = msgspec.json.encode(query.error_code).decode()
            pattern = _like_literal(f'"error_code":{code}')
            filters.append(t.c.body.like(f"%{pattern}%", escape="\\"))
        if query.since is not None:
            filters.append(t.c.ts_ms >= int(query.since.timestamp() * 1000))
        if query.until is not None:
            filters.append(t.c.ts_ms < int(query.until.timestamp() * 1000))
        return sa.select(t.c.body).where(*filters)

    async def query(self, query: AuditQuery) -> builtins.list[AuditEvent]:
        t = audit_events
        select = self._select(query).order_by(t.c.ts_ms.desc(), t.c.request_id.desc())
        if query.limit is not None:
            select = select.limit(query.limit)
        async with self._db.read() as conn:
            return [_EVENT.decode(body) for body in (await conn.execute(select)).scalars()]

    async def export(self, query: AuditQuery) -> AsyncIterator[bytes]:
        # Keyset pages, each on its own connection: a slow reader never pins a transaction.
        t = audit_events
        base = self._select(query).add_columns(t.c.ts_ms, t.c.request_id)
        base = base.order_by(t.c.ts_ms, t.c.request_id)
        left = query.limit
        after: tuple[int, str] | None = None
        while left is None or left > 0:
            page = base.limit(_EXPORT_PAGE if left is None else min(left, _EXPORT_PAGE))
            if after is not None:
                page = page.where(
                    sa.or_(
                        t.c.ts_ms > after[0],
                        sa.and_(t.c.ts_ms == after[0], t.c.request_id > after[1]),
                    )
                )
            async with self._db.read() as conn:
                rows = (await conn.execute(page)).all()
            for body, _, _ in rows:
                yield body.encode() + b"\n"
            if len(rows) < _EXPORT_PAGE and (left is None or len(rows) < left):
                return
            after = (rows[-1].ts_ms, rows[-1].request_id)
            left = None if left is None else left - len(rows)


def _like_literal(text: str) -> str:
    """``text`` matched as itself by LIKE, with backslash as the escape character."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _usage(row: sa.Row[Any]) -> UsageRow:
    return UsageRow(
        request_id=row.request_id,
        kind=row.kind,
        created_at=row.created_at,
        key_id=row.key_id,
        tenant=row.tenant,
        model=row.model,
        provider=row.provider,
        amount_micros=row.amount_micros,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        source=row.source,
    )


class SqlUsageLedger:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def append(self, rows: Sequence[UsageRow]) -> int:
        if not rows:
            return 0
        values = [msgspec.structs.asdict(row) for row in rows]
        insert = self._db.insert_ignoring(usage_ledger).returning(usage_ledger.c.id)
        async with self._db.write() as conn:
            return len((await conn.execute(insert, values)).all())

    async def for_request(self, request_id: str) -> builtins.list[UsageRow]:
        t = usage_ledger
        query = sa.select(t).where(t.c.request_id == request_id).order_by(t.c.id)
        async with self._db.read() as conn:
            return [_usage(row) for row in await conn.execute(query)]

    async def totals(
        self,
        *,
        key_id: str | None = None,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> UsageTotals:
        t = usage_ledger
        filters: builtins.list[sa.ColumnElement[bool]] = [t.c.kind.in_(SPEND_KINDS)]
        if key_id is not None:
            filters.append(t.c.key_id == key_id)
        if tenant is not None:
            filters.append(t.c.tenant == tenant)
        if since is not None:
            filters.append(t.c.created_at >= since)
        if until is not None:
            filters.append(t.c.created_at < until)
        sums = [
            sa.func.coalesce(sa.func.sum(c), 0)
            for c in (t.c.amount_micros, t.c.prompt_tokens, t.c.completion_tokens)
        ]
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(*sums).where(*filters))).one()
        return UsageTotals(
            amount_micros=int(row[0]), prompt_tokens=int(row[1]), completion_tokens=int(row[2])
        )


class SqlResponseStore:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def get(
        self, response_id: str, *, now: datetime, images: bool = True
    ) -> tuple[StoredResponse, dict[str, ResponseBlob]] | None:
        t, links, blobs = stored_responses, response_images, response_blobs
        async with self._db.read() as conn:
            found = await conn.execute(
                sa.select(t).where(t.c.id == response_id, t.c.expires_at > now)
            )
            row = found.first()
            if row is None:
                return None
            # The images ride along with the one lookup, on the same connection.
            wanted = blobs.c if images else (blobs.c.sha256,)
            linked = await conn.execute(
                sa.select(*wanted)
                .join(links, links.c.sha256 == blobs.c.sha256)
                .where(links.c.response_id == response_id)
            )
            rows = linked.all()
            digests = tuple(sorted(b.sha256 for b in rows))
            kept = (
                {b.sha256: ResponseBlob(b.sha256, b.mime, bytes(b.data)) for b in rows}
                if images
                else {}
            )
        stored = StoredResponse(
            id=row.id,
            owner=row.owner,
            key_id=row.key_id,
            model=row.model,
            created_at=row.created_at,
            expires_at=row.expires_at,
            conversation=bytes(row.conversation),
            answer=bytes(row.answer),
            images=digests,
        )
        return stored, kept

    async def put(self, response: StoredResponse, blobs: Sequence[ResponseBlob]) -> None:
        given = {b.sha256: b for b in blobs}
        wanted = set(response.images)
        values = msgspec.structs.asdict(response)
        del values["images"]
        async with self._db.write() as conn:
            inserted = await conn.execute(
                self._db.insert_ignoring(stored_responses)
                .values(values)
                .returning(stored_responses.c.id)
            )
            if inserted.first() is None or not wanted:
                return  # a retried write: the first one stands
            kept = await conn.execute(
                sa.select(response_blobs.c.sha256).where(response_blobs.c.sha256.in_(wanted))
            )
            missing = wanted - set(kept.scalars())
            if missing - given.keys():
                raise ValueError(f"no blob for images {sorted(missing - given.keys())}")
            if missing:
                await conn.execute(
                    self._db.insert_ignoring(response_blobs),
                    [
                        {"sha256": d, "mime": given[d].mime, "data": given[d].data}
                        for d in sorted(missing)
                    ],
                )
            await conn.execute(
                sa.insert(response_images),
                [{"response_id": response.id, "sha256": d} for d in sorted(wanted)],
            )

    async def delete(self, response_id: str) -> bool:
        async with self._db.write() as conn:
            named = await conn.execute(
                sa.select(response_images.c.sha256).where(
                    response_images.c.response_id == response_id
                )
            )
            digests = list(named.scalars())
            await conn.execute(
                sa.delete(response_images).where(response_images.c.response_id == response_id)
            )
            gone = await conn.execute(
                sa.delete(stored_responses)
                .where(stored_responses.c.id == response_id)
                .returning(stored_responses.c.id)
            )
            existed = gone.first() is not None
            await self._drop_unreferenced(conn, digests)
        return existed

    async def purge(self, before: datetime) -> int:
        t = stored_responses
        expired = sa.select(t.c.id).where(t.c.expires_at < before).scalar_subquery()
        async with self._db.write() as conn:
            named = await conn.execute(
                sa.select(response_images.c.sha256)
                .where(response_images.c.response_id.in_(expired))
                .distinct()
            )
            digests = list(named.scalars())
            await conn.execute(
                sa.delete(response_images).where(response_images.c.response_id.in_(expired))
            )
            gone = await conn.execute(sa.delete(t).where(t.c.expires_at < before).returning(t.c.id))
            count = len(gone.all())
            await self._drop_unreferenced(conn, digests)
        return count

    @staticmethod
    async def _drop_unreferenced(conn: AsyncConnection, digests: builtins.list[str]) -> None:
        if not digests:
            return
        still = sa.select(response_images.c.sha256).where(
            response_images.c.sha256 == response_blobs.c.sha256
        )
        await conn.execute(
            sa.delete(response_blobs).where(response_blobs.c.sha256.in_(digests), ~sa.exists(still))
        )


class SqlConsoleSessions:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def create(self, session: ConsoleSession) -> None:
        async with self._db.write() as conn:
            inserted = await conn.execute(
                self._db.insert_ignoring(console_sessions)
                .values(msgspec.structs.asdict(session))
                .returning(console_sessions.c.id_hash)
            )
            if inserted.first() is None:
                raise RecordExistsError("a console session with that id already exists")

    async def get(self, id_hash: bytes, *, now: datetime) -> ConsoleSession | None:
        t = console_sessions
        async with self._db.read() as conn:
            row = (
                await conn.execute(sa.select(t).where(t.c.id_hash == id_hash, t.c.idle_until > now))
            ).first()
        if row is None:
            return None
        session = ConsoleSession(
            id_hash=bytes(row.id_hash),
            principal=row.principal,
            csrf=row.csrf,
            created_at=row.created_at,
            expires_at=row.expires_at,
            idle_until=row.idle_until,
        )
        return session if session.live_at(now) else None

    async def touch(self, id_hash: bytes, *, idle_until: datetime) -> bool:
        t = console_sessions
        until = sa.case((t.c.expires_at < idle_until, t.c.expires_at), else_=idle_until)
        async with self._db.write() as conn:
            updated = await conn.execute(
                sa.update(t).where(t.c.id_hash == id_hash).values(idle_until=until)
            )
        return bool(updated.rowcount)

    async def delete(self, id_hash: bytes) -> bool:
        t = console_sessions
        async with self._db.write() as conn:
            gone = await conn.execute(sa.delete(t).where(t.c.id_hash == id_hash))
        return bool(gone.rowcount)

    async def purge(self, before: datetime) -> int:
        t = console_sessions
        # idle_until never passes expires_at, so it alone says when a session ended.
        async with self._db.write() as conn:
            gone = await conn.execute(sa.delete(t).where(t.c.idle_until <= before))
        return int(gone.rowcount)


def open_stores(db: SqlDatabase) -> Database:
    """Every database role over one ``SqlDatabase``."""
    return Database(
        keys=SqlKeyStore(db),
        routes=SqlDocumentStore(db, route_documents, "routes"),
        models=SqlDocumentStore(db, model_documents, "models"),
        audit=SqlAuditStore(db),
        ledger=SqlUsageLedger(db),
        responses=SqlResponseStore(db),
        sessions=SqlConsoleSessions(db),
        close=db.close,
    )


async def open_migrated(
    db: SqlDatabase, *, migrate: bool, prelude: Sequence[sa.Executable] = ()
) -> Database:
    """The stores over ``db``, after migrating if asked; closes ``db`` if that fails."""
    try:
        if migrate:
            await run_migrations(db, *prelude)
    except BaseException:
        await db.close()
        raise
    return open_stores(db)
