"""Console sessions across instances: two gateways on one database share every sign-in.

Each instance is a whole gateway (its own apps, lifespan, caches and spool) over the same
SQLite file or PostgreSQL schema, as a fleet behind a load balancer is. The instances here
trust their cached copy of a session for 0 s (``auth.console_cache_s``), so a sign-out is
honoured by the other at once; the default bound is covered, with a stepped clock, in
tests/governance/test_console_sessions.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest

from aperture.app import create_apps
from aperture.console.sessions import COOKIE
from aperture.settings import AuthSettings, Settings
from aperture.settings.schema import StorageSettings
from tests.api.test_control_plane import eventually
from tests.contract.services import (  # noqa: F401
    fresh_postgres_url,
    postgres_server,
)
from tests.faultproxy import FaultProxy, proxied_url
from tests.servers import serve_together


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


def instance_settings(settings: Settings, database: str, spool: Path) -> Settings:
    return msgspec.structs.replace(
        settings,
        auth=AuthSettings(master_key="sk-master", key_pepper="pepper", console_cache_s=0),
        storage=StorageSettings(database=database, spool_dir=str(spool)),
    )


@contextmanager
def instance(settings: Settings, database: str, spool: Path) -> Iterator[str]:
    """One gateway instance; yields its admin URL."""
    with serve_together(*create_apps(instance_settings(settings, database, spool))) as urls:
        yield urls[1]


def sign_in(admin: str, key: str = "sk-master") -> tuple[str, str]:
    """Signs in on ``admin``; returns the session cookie and its CSRF token."""
    with httpx.Client(base_url=admin, timeout=30) as client:
        answer = client.post("/console/signin", data={"key": key})
        assert answer.status_code == 303, answer.text
        page = client.get("/console/overview")
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert token is not None
        return client.cookies[COOKIE], token.group(1)


def keys(admin: str, session: str) -> int:
    return httpx.get(f"{admin}/v1/admin/keys", cookies={COOKIE: session}, timeout=30).status_code


def test_a_session_made_on_one_instance_works_and_signs_out_on_another(
    gateway_settings: Settings, database: str, tmp_path: Path
) -> None:
    with (
        instance(gateway_settings, database, tmp_path / "a") as a,
        instance(gateway_settings, database, tmp_path / "b") as b,
    ):
        session, csrf = sign_in(a)
        assert keys(a, session) == 200
        assert keys(b, session) == 200
        page = httpx.get(f"{b}/console/keys", cookies={COOKIE: session})
        assert page.status_code == 200 and csrf in page.text
        made = httpx.post(
            f"{b}/v1/admin/keys",
            json={"name": "from-b"},
            cookies={COOKIE: session},
            headers={"x-csrf-token": csrf},
        )
        assert made.status_code == 201, made.text
        out = httpx.post(f"{b}/console/signout", data={"csrf": csrf}, cookies={COOKIE: session})
        assert out.status_code == 303
        assert keys(b, session) == 401
        assert keys(a, session) == 401
        assert httpx.get(f"{a}/console/overview", cookies={COOKIE: session}).status_code == 303


def test_revoking_an_admin_key_on_one_instance_ends_its_sessions_on_the_other(
    gateway_settings: Settings, database: str, tmp_path: Path
) -> None:
    with (
        instance(gateway_settings, database, tmp_path / "a") as a,
        instance(gateway_settings, database, tmp_path / "b") as b,
    ):
        master = {"authorization": "Bearer sk-master"}
        issued = httpx.post(
            f"{a}/v1/admin/keys", json={"name": "ops", "admin": True}, headers=master
        ).json()
        session, _ = sign_in(a, issued["key"])
        assert keys(b, session) == 200
        httpx.delete(f"{a}/v1/admin/keys/{issued['id']}", headers=master)
        assert keys(a, session) == 401
        # b learns of the revocation through its key cache's poll (every half second).
        eventually(lambda: keys(b, session) == 401)


def test_a_restart_keeps_the_session(
    gateway_settings: Settings, database: str, tmp_path: Path
) -> None:
    with instance(gateway_settings, database, tmp_path / "a") as a:
        session, _ = sign_in(a)
        assert keys(a, session) == 200
    with instance(gateway_settings, database, tmp_path / "a") as again:
        assert keys(again, session) == 200
        assert httpx.get(f"{again}/console/overview", cookies={COOKIE: session}).status_code == 200


def test_with_the_database_down_sign_in_is_503_and_a_cached_session_goes_on(
    gateway_settings: Settings, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    postgres: str = request.getfixturevalue("fresh_postgres_url")
    with FaultProxy(*_address(postgres)) as proxy:
        database = proxied_url(postgres, proxy)
        settings = instance_settings(gateway_settings, database, tmp_path / "spool")
        settings = msgspec.structs.replace(
            settings,
            storage=msgspec.structs.replace(settings.storage, database_timeout_s=1.0),
        )
        with serve_together(*create_apps(settings)) as (_, admin):
            session, _ = sign_in(admin)
            proxy.down()
            refused = httpx.post(f"{admin}/console/signin", data={"key": "sk-master"}, timeout=30)
            assert refused.status_code == 503
            assert "session store cannot be reached" in refused.text
            assert "set-cookie" not in refused.headers
            # The page needs only the session, which this instance has cached.
            page = httpx.get(f"{admin}/console/overview", cookies={COOKIE: session}, timeout=30)
            assert page.status_code == 200
            proxy.heal()
            assert keys(admin, session) == 200


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432
