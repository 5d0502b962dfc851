"""Schema migrations: Alembic driven programmatically, scripts shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

__all__ = ["current_revision", "head_revision", "upgrade"]

_HERE = Path(__file__).parent


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    # ConfigParser interpolates '%', which a checkout path may contain.
    config.set_main_option("script_location", str(_HERE).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection) -> None:
    """Bring the schema to the newest revision, inside the caller's transaction.

    A no-op when it is already there. Synchronous: run it through ``AsyncConnection.run_sync``.
    """
    command.upgrade(_config(connection), "head")


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None before the first migration."""
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this version of Aperture ships."""
    return ScriptDirectory.from_config(_config()).get_current_head()
