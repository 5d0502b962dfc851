"""The schema revision this version of Aperture ships, readable without loading Alembic."""

from __future__ import annotations

__all__ = ["HEAD_REVISION"]

# Must equal the newest script in migrations/versions (a test checks it).
HEAD_REVISION = "0004"
