"""Console sign-ins, shared by every instance: the hash of the id, never the id or a key.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.LargeBinary(), primary_key=True),
        sa.Column("principal", sa.Text(), nullable=False),
        sa.Column("csrf", sa.Text(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.Column("idle_until", _TIME, nullable=False),
    )
    op.create_index("ix_console_sessions_idle_until", "console_sessions", ["idle_until"])


def downgrade() -> None:
    op.drop_table("console_sessions")
