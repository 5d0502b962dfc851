"""Responses API answers kept for ``previous_response_id``, and the images they need.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.Column("conversation", sa.LargeBinary(), nullable=False),
        sa.Column("answer", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_stored_responses_expires", "stored_responses", ["expires_at"])
    op.create_table(
        "response_blobs",
        sa.Column("sha256", sa.Text(), primary_key=True),
        sa.Column("mime", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "response_images",
        sa.Column(
            "response_id",
            sa.Text(),
            sa.ForeignKey("stored_responses.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("sha256", sa.Text(), sa.ForeignKey("response_blobs.sha256"), primary_key=True),
    )
    op.create_index("ix_response_images_sha256", "response_images", ["sha256"])


def downgrade() -> None:
    op.drop_table("response_images")
    op.drop_table("response_blobs")
    op.drop_table("stored_responses")
