"""A gateway instance SIGKILLed mid-stream: the survivor settles every hold it left behind.

Two ``aperture serve`` processes share PostgreSQL and Redis; three slow streams are in flight
through the first when it is killed. Within seconds (the heartbeat TTL is 1 s here) the second
has released each hold, charged it at the estimate, and written one ledger row (source
``abandoned``) and one audit event (``instance_lost``) for it.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
import redis

from aperture.storage import AuditEvent, AuditQuery, UsageRow, open_storage
from tests.contract.services import (  # noqa: F401
    fresh_postgres_url,
    postgres_server,
    redis_server,
)
from tests.servers import serve
from tests.test_cli import _aperture, _free_port, _wait_healthy
from tests.upstreams import SlowStream

MASTER = {"authorization": "Bearer sk-master"}
MAX_TOKENS = 50
# A database of this test's own on the test Redis: the instance registry is global to a
# database, and another test's instances must not be reclaimed into this test's ledger.
REDIS_DB = "/14"

CONFIG = """
auth: {{master_key: sk-master, key_pepper: pepper}}
storage:
  database: "{database}"
  redis: "{redis}"
  spool_dir: "{spool}"
  heartbeat_s: 0.2
  instance_ttl_s: 1.0
providers:
  - {{name: slow, kind: openai, base_url: "{upstream}/v1", api_key: k}}
models:
  - {{name: slow-model, provider: slow, capabilities: [tools]}}
governance:
  prices: [{{model: slow-model, input: 1.0, output: 1.0}}]
"""


class Gateway:
    def __init__(self, public: str, admin: str) -> None:
        self.public, self.admin = public, admin

    def admin_call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.admin}{path}", headers=MASTER, timeout=30, **kwargs)


def _redis_url(base: str) -> str:
    return urlsplit(base)._replace(path=REDIS_DB).geturl()


def _flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match="aperture:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:  # noqa: F811
    url = _redis_url(redis_server)
    _flush(url)
    yield url
    _flush(url)


def _start(stack: ExitStack, tmp_path: Path, name: str, env: dict[str, str]) -> Any:
    port, admin_port = _free_port(), _free_port()
    config = tmp_path / f"{name}.yaml"
    config.write_text(CONFIG.format(spool=tmp_path / f"spool-{name}", **env))
    process = stack.enter_context(
        _aperture(
            tmp_path, "--config", str(config), "--port", str(port), "--admin-port", str(admin_port)
        )
    )
    _wait_healthy(process, port)
    return process, Gateway(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}")


def _budget(gateway: Gateway, key_id: str) -> dict[str, Any]:
    listing = gateway.admin_call("GET", "/v1/admin/budgets", params={"key_id": key_id})
    assert listing.status_code == 200, listing.text
    line: dict[str, Any] = listing.json()["data"][0]
    return line


async def _records(database: str, ids: list[str]) -> tuple[list[UsageRow], list[AuditEvent]]:
    async with await open_storage(database, None) as storage:
        rows = [row for rid in ids for row in await storage.ledger.for_request(rid)]
        events = [
            event for rid in ids for event in await storage.audit.query(AuditQuery(request_id=rid))
        ]
    return rows, events


def test_a_killed_instance_has_its_holds_settled_by_the_survivor(
    tmp_path: Path,
    fresh_postgres_url: str,  # noqa: F811
    redis_url: str,
) -> None:
    upstream = SlowStream()
    with ExitStack() as stack:
        env = {
            "database": fresh_postgres_url,
            "redis": redis_url,
            "upstream": stack.enter_context(serve(upstream.app)),
        }
        # One after the other: the first migrates the fresh schema.
        doomed_process, doomed = _start(stack, tmp_path, "doomed", env)
        _, survivor = _start(stack, tmp_path, "survivor", env)

        created = survivor.admin_call(
            "POST", "/v1/admin/keys", json={"name": "k", "budget": {"usd": 100.0}}
        )
        assert created.status_code == 201, created.text
        key_id, secret = created.json()["id"], created.json()["key"]
        auth = {"authorization": f"Bearer {secret}"}
        deadline = time.monotonic() + 60  # a loaded CI machine polls late
        while httpx.get(f"{doomed.public}/v1/models", headers=auth).status_code != 200:
            assert time.monotonic() < deadline, "the key never reached the first instance"
            time.sleep(0.05)

        body = {
            "model": "slow-model",
            "stream": True,
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": "Count slowly."}],
        }
        ids, readers = [], []
        for _ in range(3):
            client = stack.enter_context(httpx.Client(timeout=30))
            response = stack.enter_context(
                client.stream(
                    "POST", f"{doomed.public}/v1/chat/completions", json=body, headers=auth
                )
            )
            assert response.status_code == 200
            # Kept referenced: a line iterator garbage-collected closes its stream.
            readers.append(response.iter_lines())
            next(readers[-1])  # a first chunk: the request is in flight
            ids.append(response.headers["x-request-id"])
        held = _budget(survivor, key_id)
        assert held["reserved"]["tokens"] > 3 * MAX_TOKENS, json.dumps(held)
        assert held["spent"]["tokens"] == 0

        doomed_process.send_signal(signal.SIGKILL)
        doomed_process.wait(timeout=10)

        deadline = time.monotonic() + 60  # the TTL is 1 s: "within seconds", generously
        while (line := _budget(survivor, key_id))["reserved"]["tokens"] != 0:
            assert time.monotonic() < deadline, f"holds still reserved: {line}"
            time.sleep(0.1)
        rows, events = anyio.run(_records, fresh_postgres_url, ids)
        while len(events) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.1)
            rows, events = anyio.run(_records, fresh_postgres_url, ids)

    assert sorted(row.request_id for row in rows) == sorted(ids)  # one row each
    for row in rows:
        assert (row.kind, row.source, row.key_id) == ("settle", "abandoned", key_id)
        assert row.completion_tokens == MAX_TOKENS  # the estimate, not what was relayed
        assert row.amount_micros == row.prompt_tokens + row.completion_tokens  # $1 per M
    assert sorted(event.request_id for event in events) == sorted(ids)
    for event in events:
        assert (event.status, event.error_code, event.key_id) == (500, "instance_lost", key_id)
        assert event.endpoint == "/v1/chat/completions"
        assert event.model == "slow-model"
    spent = sum(row.prompt_tokens + row.completion_tokens for row in rows)
    assert line["spent"]["tokens"] == spent == held["reserved"]["tokens"]
    assert line["ledger"]["tokens"] == spent
    assert json.dumps(line)  # the admin view stays serialisable after a reclaim
