"""How the suite finds PostgreSQL and Redis, and what it does when they are missing.

The one rule: a test that needs a service it cannot reach is SKIPPED, with the reason and the
variable to set, except under ``CI=true``, where it FAILS, so a CI run can never go green by
quietly skipping the backends it exists to check.

    APERTURE_TEST_POSTGRES   default postgresql://postgres@127.0.0.1:5432/test
    APERTURE_TEST_REDIS      default redis://127.0.0.1:6379/15

Each session works in its own PostgreSQL schema (dropped at the end) and under its own Redis
key prefix, so CI and a developer can share one server.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import anyio
import pytest
import sqlalchemy as sa

from aperture.storage import migrate
from aperture.storage.postgres import connect
from aperture.storage.redis_counters import RedisCounters
from aperture.storage.tables import metadata

POSTGRES_ENV = "APERTURE_TEST_POSTGRES"
POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_ENV = "APERTURE_TEST_REDIS"
REDIS_DEFAULT = "redis://127.0.0.1:6379/15"

RUN_ID = uuid.uuid4().hex[:10]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


@functools.cache
def _unreachable(url: str, default_port: int) -> str | None:
    """Why ``url``'s server cannot be reached, or None if a TCP connection opens."""
    parts = urlsplit(url)
    try:
        port = parts.port or default_port
    except ValueError as exc:
        return f"malformed URL: {exc}"
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=2):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def require_service(name: str, env_var: str, default: str, default_port: int) -> str:
    """The service's URL; skips the test when it is unreachable, or fails under CI=true."""
    url = os.environ.get(env_var) or default
    reason = _unreachable(url, default_port)
    if reason is None:
        return url
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.hostname}:{parts.port or default_port}{parts.path}"
    message = f"{name} unreachable at {where} ({reason}); start it or set {env_var}"
    if in_ci():
        pytest.fail(f"{message}. CI=true requires every service.", pytrace=False)
    pytest.skip(message)


def schema_url(base: str, schema: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


async def drop_schema(base: str, schema: str) -> None:
    db = connect(base)
    try:
        async with db.write() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await db.close()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The base URL of the test PostgreSQL (no schema)."""
    return require_service("PostgreSQL", POSTGRES_ENV, POSTGRES_DEFAULT, 5432)


@pytest.fixture(scope="session")
def postgres_session_url(postgres_server: str) -> Iterator[str]:
    """A schema of this session's own, migrated once and dropped at the end."""
    schema = f"aperture_test_{RUN_ID}"
    url = schema_url(postgres_server, schema)
    anyio.run(migrate, url)
    try:
        yield url
    finally:
        anyio.run(drop_schema, postgres_server, schema)


async def truncate(url: str) -> None:
    data = [t.name for t in metadata.sorted_tables if t.name != "changes"]
    db = connect(url)
    try:
        async with db.write() as conn:
            await conn.execute(sa.text(f"TRUNCATE {', '.join(data)} RESTART IDENTITY"))
    finally:
        await db.close()


# The PostgreSQL fixtures are synchronous (each runs its own short event loop) so that
# parametrised fixtures can ask for them with getfixturevalue from any test.


@pytest.fixture
def postgres_url(postgres_session_url: str) -> str:
    """The session schema, emptied before each test (the change counters keep counting)."""
    anyio.run(truncate, postgres_session_url)
    return postgres_session_url


@pytest.fixture
def fresh_postgres_url(postgres_server: str) -> Iterator[str]:
    """A schema nobody has migrated yet, dropped after the test."""
    schema = f"aperture_test_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    try:
        yield schema_url(postgres_server, schema)
    finally:
        anyio.run(drop_schema, postgres_server, schema)


@pytest.fixture(scope="session")
def redis_server() -> str:
    return require_service("Redis", REDIS_ENV, REDIS_DEFAULT, 6379)


@pytest.fixture
async def redis_counters(redis_server: str) -> AsyncIterator[RedisCounters]:
    """Counters under a prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"aperture-test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    counters = RedisCounters.from_url(redis_server, prefix=prefix)
    try:
        yield counters
    finally:
        raw = counters.client
        keys = [key async for key in raw.scan_iter(match=f"{prefix}*")]
        if keys:
            await raw.delete(*keys)
        await counters.close()
