"""The tables, as SQLAlchemy Core objects shared by every SQL backend.

This describes what the migrations (``migrations/versions``) create; the migrations stay the
authority for the schema, and ``tests/storage/test_migrations.py`` checks the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "COLLECTIONS",
    "api_keys",
    "audit_events",
    "changes",
    "metadata",
    "model_documents",
    "response_blobs",
    "response_images",
    "route_documents",
    "stored_responses",
    "usage_ledger",
]

# Rows of ``changes``, seeded by the first migration: one change counter per cached collection.
COLLECTIONS = ("keys", "routes", "models")


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every dialect.

    SQLite has no time zones and hands back naive values; PostgreSQL's timestamptz hands back
    the session's zone. Normalising here keeps the stores free of dialect checks.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("naive datetimes are refused: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

changes = sa.Table(
    "changes",
    metadata,
    sa.Column("collection", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("tenant", sa.Text, nullable=True),
    sa.Column("key_hash", sa.LargeBinary, nullable=False),
    sa.Column("models", sa.Text, nullable=True),  # a JSON array; NULL means every model
    sa.Column("rpm", sa.Integer, nullable=True),
    sa.Column("tpm", sa.Integer, nullable=True),
    sa.Column("budget_usd", sa.Float, nullable=True),
    sa.Column("budget_tokens", sa.BigInteger, nullable=True),
    sa.Column("budget_period", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    sa.Index("ix_api_keys_tenant", "tenant"),
)


def _documents(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("body", sa.Text, nullable=False),  # a JSON object, as written
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )


route_documents = _documents("routes")
model_documents = _documents("models")

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("request_id", sa.Text, primary_key=True),  # the idempotency key of a replay
    sa.Column("ts_ms", sa.BigInteger, nullable=False),
    sa.Column("key_id", sa.Text, nullable=True),
    sa.Column("tenant", sa.Text, nullable=True),
    sa.Column("model", sa.Text, nullable=True),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # the whole event as JSON: one decode per row
    sa.Index("ix_audit_events_ts", "ts_ms"),
    sa.Index("ix_audit_events_key", "key_id", "ts_ms"),
    sa.Index("ix_audit_events_tenant", "tenant", "ts_ms"),
    sa.Index("ix_audit_events_model", "model", "ts_ms"),
)

usage_ledger = sa.Table(
    "usage_ledger",
    metadata,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("key_id", sa.Text, nullable=True),
    sa.Column("tenant", sa.Text, nullable=True),
    sa.Column("model", sa.Text, nullable=True),
    sa.Column("provider", sa.Text, nullable=True),
    sa.Column("amount_micros", sa.BigInteger, nullable=False),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("request_id", "kind", name="uq_usage_ledger_request_kind"),
    sa.Index("ix_usage_ledger_key", "key_id", "created_at"),
    sa.Index("ix_usage_ledger_tenant", "tenant", "created_at"),
)

# Responses API answers kept for ``previous_response_id``: the conversation is opaque JSON,
# its images are rows of ``response_blobs`` (by content hash), linked by ``response_images``.
stored_responses = sa.Table(
    "stored_responses",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("key_id", sa.Text, nullable=True),
    sa.Column("model", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("conversation", sa.LargeBinary, nullable=False),
    sa.Column("answer", sa.LargeBinary, nullable=False),
    sa.Index("ix_stored_responses_expires", "expires_at"),
)

response_blobs = sa.Table(
    "response_blobs",
    metadata,
    sa.Column("sha256", sa.Text, primary_key=True),
    sa.Column("mime", sa.Text, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

response_images = sa.Table(
    "response_images",
    metadata,
    sa.Column(
        "response_id",
        sa.Text,
        sa.ForeignKey("stored_responses.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # The foreign key makes a purge that races a new reference fail rather than orphan it.
    sa.Column("sha256", sa.Text, sa.ForeignKey("response_blobs.sha256"), primary_key=True),
    sa.Index("ix_response_images_sha256", "sha256"),
)

# Console sign-ins: only the SHA-256 of the cookie's id, and the key's id, never a secret.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id_hash", sa.LargeBinary, primary_key=True),
    sa.Column("principal", sa.Text, nullable=False),
    sa.Column("csrf", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("idle_until", UtcDateTime, nullable=False),
    sa.Index("ix_console_sessions_idle_until", "idle_until"),
)
