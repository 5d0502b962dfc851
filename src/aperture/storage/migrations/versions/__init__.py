"""Schema revisions, applied in order by Alembic; each file is a frozen snapshot."""
