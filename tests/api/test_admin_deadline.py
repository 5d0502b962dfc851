"""Admin calls that need the database end within ``storage.database_timeout_s``.

A PostgreSQL that stops answering (reached through a ``FaultProxy``), or a SQLite file whose
lock another process holds, gets the admin caller a 503 ``service_unavailable`` with
``Retry-After`` within a bounded time, not after the driver's half-minute command timeout;
once the database is back, keys are issued and revoked again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest

from aperture.app import create_apps
from aperture.settings import AuthSettings, Settings
from aperture.settings.schema import StorageSettings
from tests.contract.services import fresh_postgres_url, postgres_server  # noqa: F401
from tests.faultproxy import FaultProxy, proxied_url
from tests.servers import serve_together

MASTER = {"authorization": "Bearer sk-master"}
DEADLINE_S = 1.0
# Generous: one deadline, and the connection it cost, with room for a loaded machine.
BOUND_S = 8.0
RECOVERY_S = 15.0


class Admin(msgspec.Struct):
    url: str

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.url}/v1/admin{path}", headers=MASTER, timeout=60, **kwargs
        )

    def issue(self, name: str) -> httpx.Response:
        return self.call("POST", "/keys", json={"name": name})


def _settings(base: Settings, tmp_path: Path, database: str) -> Settings:
    return msgspec.structs.replace(
        base,
        auth=AuthSettings(master_key="sk-master"),
        storage=StorageSettings(
            database=database,
            spool_dir=str(tmp_path / "spool"),
            ledger_timeout_s=DEADLINE_S,
            database_timeout_s=DEADLINE_S,
        ),
    )


def _assert_unavailable_in_time(call: Any) -> None:
    started = time.monotonic()
    response: httpx.Response = call()
    assert time.monotonic() - started < BOUND_S, "the admin call outlived its deadline"
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response.headers["retry-after"] == "1"


def _until(status: int, call: Any) -> httpx.Response:
    deadline = time.monotonic() + RECOVERY_S
    while True:
        response: httpx.Response = call()
        assert response.status_code != 500, response.text
        if response.status_code == status:
            return response
        assert time.monotonic() < deadline, f"not recovered: {response.text}"
        time.sleep(0.1)


@pytest.fixture
def behind_proxy(
    gateway_settings: Settings,
    fresh_postgres_url: str,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[Admin, FaultProxy]]:
    parts = urlsplit(fresh_postgres_url)
    with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        database = proxied_url(fresh_postgres_url, proxy)
        apps = create_apps(_settings(gateway_settings, tmp_path, database))
        with serve_together(*apps) as (_, admin):
            yield Admin(admin), proxy


@pytest.mark.parametrize("fault", ["blackhole", "drop_replies"])
def test_admin_key_calls_against_a_silent_postgres_are_503_within_the_deadline(
    behind_proxy: tuple[Admin, FaultProxy], fault: str
) -> None:
    admin, proxy = behind_proxy
    kept = admin.issue("before")
    assert kept.status_code == 201, kept.text

    getattr(proxy, fault)()
    _assert_unavailable_in_time(lambda: admin.issue("during"))
    _assert_unavailable_in_time(lambda: admin.call("DELETE", f"/keys/{kept.json()['id']}"))
    _assert_unavailable_in_time(lambda: admin.call("GET", "/keys"))

    proxy.heal()
    _until(201, lambda: admin.issue("after"))
    names = {key["name"] for key in _until(200, lambda: admin.call("GET", "/keys")).json()["data"]}
    assert names == {"before", "after"}, "a refused issue left no key behind"
    assert admin.call("DELETE", f"/keys/{kept.json()['id']}").status_code == 200


def test_admin_key_calls_while_another_process_holds_sqlite_are_503_within_the_deadline(
    gateway_settings: Settings, tmp_path: Path
) -> None:
    database = tmp_path / "admin.db"
    apps = create_apps(_settings(gateway_settings, tmp_path, f"sqlite:///{database}"))
    with serve_together(*apps) as (_, url):
        admin = Admin(url)
        assert admin.issue("before").status_code == 201
        outside = sqlite3.connect(database, timeout=30, isolation_level=None)
        try:
            outside.execute("BEGIN IMMEDIATE")  # the write lock, held as a backup tool might
            _assert_unavailable_in_time(lambda: admin.issue("during"))
        finally:
            outside.execute("ROLLBACK")
            outside.close()
        _until(201, lambda: admin.issue("after"))
