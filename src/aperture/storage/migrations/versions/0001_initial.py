"""The first schema: keys, routes, models, change counters, audit trail and usage ledger.

A migration is a frozen snapshot, so it spells every column out instead of importing
``aperture.storage.tables``, which will keep moving.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)

# The ledger is money: corrections are new rows, so UPDATE and DELETE are refused outright.
_APPEND_ONLY = {
    "postgresql": [
        """CREATE FUNCTION usage_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'usage_ledger is append-only'; END $$""",
        """CREATE TRIGGER usage_ledger_append_only BEFORE UPDATE OR DELETE ON usage_ledger
           FOR EACH ROW EXECUTE FUNCTION usage_ledger_append_only()""",
    ],
    "sqlite": [
        """CREATE TRIGGER usage_ledger_no_update BEFORE UPDATE ON usage_ledger
           BEGIN SELECT RAISE(ABORT, 'usage_ledger is append-only'); END""",
        """CREATE TRIGGER usage_ledger_no_delete BEFORE DELETE ON usage_ledger
           BEGIN SELECT RAISE(ABORT, 'usage_ledger is append-only'); END""",
    ],
}


def _documents(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
    )


def upgrade() -> None:
    changes = op.create_table(
        "changes",
        sa.Column("collection", sa.Text, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(changes, [{"collection": c, "version": 0} for c in ("keys", "routes", "models")])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("tenant", sa.Text, nullable=True),
        sa.Column("key_hash", sa.LargeBinary, nullable=False),
        sa.Column("models", sa.Text, nullable=True),
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("tpm", sa.Integer, nullable=True),
        sa.Column("budget_usd", sa.Float, nullable=True),
        sa.Column("budget_tokens", sa.BigInteger, nullable=True),
        sa.Column("budget_period", sa.Text, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=True),
        sa.Column("revoked_at", _TIME, nullable=True),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"])
    _documents("routes")
    _documents("models")
    op.create_table(
        "audit_events",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.Text, nullable=True),
        sa.Column("tenant", sa.Text, nullable=True),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_events_ts", "audit_events", ["ts_ms"])
    op.create_index("ix_audit_events_key", "audit_events", ["key_id", "ts_ms"])
    op.create_index("ix_audit_events_tenant", "audit_events", ["tenant", "ts_ms"])
    op.create_index("ix_audit_events_model", "audit_events", ["model", "ts_ms"])
    op.create_table(
        "usage_ledger",
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
        sa.Column("created_at", _TIME, nullable=False),
        sa.UniqueConstraint("request_id", "kind", name="uq_usage_ledger_request_kind"),
    )
    op.create_index("ix_usage_ledger_key", "usage_ledger", ["key_id", "created_at"])
    op.create_index("ix_usage_ledger_tenant", "usage_ledger", ["tenant", "created_at"])
    for statement in _APPEND_ONLY.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS usage_ledger_append_only() CASCADE")
    for table in ("usage_ledger", "audit_events", "models", "routes", "api_keys", "changes"):
        op.drop_table(table)
