"""Stop the database under load: every audit event still arrives, exactly once."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from aperture.app import create_apps
from aperture.settings import AuthSettings, Settings
from aperture.settings.schema import StorageSettings
from tests.servers import serve_together

MASTER = {"authorization": "Bearer sk-master"}


@pytest.fixture
def gateway(gateway_settings: Settings, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    database = tmp_path / "audit.db"
    settings = msgspec.structs.replace(
        gateway_settings,
        auth=AuthSettings(master_key="sk-master"),
        storage=StorageSettings(
            database=f"sqlite:///{database}", spool_dir=str(tmp_path / "spool")
        ),
    )
    with serve_together(*create_apps(settings)) as (public, admin):
        yield public, admin, database


def test_audit_events_survive_a_database_outage(gateway: tuple[str, str, Path]) -> None:
    public, admin, database = gateway
    body = {"model": "demo-text", "messages": [{"role": "user", "content": "during the outage"}]}
    outside = sqlite3.connect(database, timeout=30)
    # The "outage": the audit table disappears while requests keep coming.
    outside.execute("ALTER TABLE audit_events RENAME TO audit_events_away")
    outside.commit()
    request_ids = []
    with httpx.Client(base_url=public, headers=MASTER, timeout=30) as client:
        for _ in range(20):
            response = client.post("/v1/chat/completions", json=body)
            assert response.status_code == 200  # serving never depends on the audit store
            request_ids.append(response.headers["x-request-id"])
        time.sleep(1.5)  # let the writer fail, spool, and retry against the missing table
    outside.execute("ALTER TABLE audit_events_away RENAME TO audit_events")
    outside.commit()
    outside.close()

    def stored() -> list[str]:
        events = httpx.get(
            f"{admin}/v1/admin/audit?format=jsonl", headers=MASTER, timeout=30
        ).text.splitlines()
        return [msgspec.json.decode(line)["request_id"] for line in events if line]

    deadline = time.monotonic() + 20
    while not set(request_ids) <= set(stored()):
        assert time.monotonic() < deadline, f"{len(set(request_ids) & set(stored()))} of 20 arrived"
        time.sleep(0.2)
    found = stored()
    assert all(found.count(rid) == 1 for rid in request_ids)
