"""Alembic's entry point, driven only by ``aperture.storage.migrations.upgrade``.

The caller hands over an open connection (inside its transaction and, on PostgreSQL, its
advisory lock), so this file never reads a URL or an ini file.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `aperture migrate`, not the alembic command")
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
