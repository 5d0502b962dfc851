"""Budgets and rate limits, exact across three gateway instances sharing PostgreSQL and Redis."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from aperture.app import create_apps
from aperture.governance.budgets import window
from aperture.settings import AuthSettings, Settings
from aperture.settings.governance import GovernanceSettings, PriceSettings
from aperture.settings.schema import StorageSettings
from aperture.storage import UsageRow, open_storage
from tests import sample_images
from tests.contract.services import (  # noqa: F401
    fresh_postgres_url,
    postgres_server,
    redis_server,
)
from tests.servers import serve_together

MASTER = {"authorization": "Bearer sk-master"}
JPEG = sample_images.jpeg(64, 48)
# One micro-dollar per token in and out: costs read as token counts.
PRICE = PriceSettings(model="demo-vision", input=1.0, output=1.0)


def body(max_tokens: int = 20) -> dict[str, Any]:
    return {
        "model": "demo-vision",
        "max_tokens": max_tokens,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": sample_images.data_uri(JPEG, "image/jpeg")},
                    },
                ],
            }
        ],
    }


class Cluster(msgspec.Struct):
    publics: list[str]
    admins: list[str]
    database: str

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.admins[0]}{path}", headers=MASTER, timeout=30, **kwargs
        )

    def key(self, **fields: Any) -> dict[str, Any]:
        created = self.admin("POST", "/v1/admin/keys", json={"name": "limited", **fields})
        assert created.status_code == 201, created.text
        answer: dict[str, Any] = created.json()
        auth = {"authorization": f"Bearer {answer['key']}"}
        deadline = time.monotonic() + 10
        for public in self.publics:  # each instance's key cache catches up within a second
            while httpx.get(f"{public}/v1/models", headers=auth).status_code != 200:
                assert time.monotonic() < deadline, "the key never reached every instance"
                time.sleep(0.05)
        return answer

    async def fire(self, secret: str, count: int, payload: dict[str, Any]) -> list[httpx.Response]:
        """``count`` requests at once, spread round-robin over the instances."""
        responses: list[httpx.Response] = []
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:

            async def one(i: int) -> None:
                url = f"{self.publics[i % len(self.publics)]}/v1/chat/completions"
                headers = {"authorization": f"Bearer {secret}"}
                responses.append(await client.post(url, json=payload, headers=headers))

            async with anyio.create_task_group() as group:
                for i in range(count):
                    group.start_soon(one, i)
        return responses


@pytest.fixture
def cluster(
    gateway_settings: Settings,
    fresh_postgres_url: str,  # noqa: F811
    redis_server: str,  # noqa: F811
    tmp_path: Path,
) -> Iterator[Cluster]:
    publics, admins = [], []
    with contextlib.ExitStack() as stack:
        for name in "abc":
            settings = msgspec.structs.replace(
                gateway_settings,
                auth=AuthSettings(master_key="sk-master", key_pepper="pepper"),
                storage=StorageSettings(
                    database=fresh_postgres_url,
                    redis=redis_server,
                    spool_dir=str(tmp_path / name),
                    # These tests are about shared counting, not outages: on a loaded machine
                    # a healthy Redis or database may answer late, and must not count as down.
                    redis_timeout_s=30.0,
                    database_timeout_s=30.0,
                    ledger_timeout_s=30.0,
                ),
                governance=GovernanceSettings(prices=(PRICE,)),
            )
            public, admin = stack.enter_context(serve_together(*create_apps(settings)))
            publics.append(public)
            admins.append(admin)
        yield Cluster(publics, admins, fresh_postgres_url)


async def _spend_before(database: str, key_id: str, micros: int) -> None:
    """Ledger spend from earlier in the month, as another instance would have written it."""
    async with await open_storage(database, None) as storage:
        await storage.ledger.append(
            [
                UsageRow(
                    request_id=f"earlier-{uuid.uuid4().hex}",
                    kind="settle",
                    created_at=window("monthly", datetime.now(UTC))[1],
                    key_id=key_id,
                    model="demo-vision",
                    amount_micros=micros,
                    prompt_tokens=micros,
                )
            ]
        )


def test_a_nearly_spent_budget_admits_only_what_fits_across_instances(cluster: Cluster) -> None:
    limit_micros = 100_000
    key = cluster.key(budget={"usd": limit_micros / 1e6, "period": "monthly"})
    room = 3_000  # about eight requests' worth at their estimate
    anyio.run(_spend_before, cluster.database, key["id"], limit_micros - room)

    responses = anyio.run(cluster.fire, key["key"], 50, body())

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 429}, statuses
    refused = [r for r in responses if r.status_code == 429]
    assert refused, "some of the 50 must not fit"
    for response in refused:
        assert response.json()["error"]["code"] == "budget_exceeded"
        assert response.headers["x-should-retry"] == "false"
        assert int(response.headers["retry-after"]) >= 1
    admitted = [r for r in responses if r.status_code == 200]
    costs = [r.json()["usage"]["total_tokens"] for r in admitted]
    assert admitted and sum(costs) <= room, "what was admitted fits in the room left"

    def budget() -> dict[str, Any]:
        listing = cluster.admin("GET", "/v1/admin/budgets", params={"key_id": key["id"]})
        [line] = listing.json()["data"]
        return dict(line)

    # Requests settle after their answer has gone: wait until none is in flight any more.
    deadline = time.monotonic() + 15
    while (line := budget())["reserved"] != {"usd": 0.0, "tokens": 0}:
        assert time.monotonic() < deadline, f"holds never settled: {line}"
        time.sleep(0.05)
    spent_micros = round(line["spent"]["usd"] * 1e6)
    assert round(line["ledger"]["usd"] * 1e6) == spent_micros, "ledger equals the counters"
    assert spent_micros == limit_micros - room + sum(costs)
    assert line["reserved"] == {"usd": 0.0, "tokens": 0}, "every hold was settled"
    assert spent_micros <= limit_micros


def test_a_100_rpm_key_hit_300_times_across_instances_admits_100(cluster: Cluster) -> None:
    key = cluster.key(rpm=100)

    responses = anyio.run(cluster.fire, key["key"], 300, body(max_tokens=5))

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 100, 429: 200}, statuses
    for response in responses:
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "rate_limit_exceeded"
            # The window slides: room comes back about a minute after the first admission.
            assert 1 <= int(response.headers["retry-after"]) <= 60


def test_a_tokens_per_minute_limit_counts_image_tokens(cluster: Cluster) -> None:
    # The image alone is estimated at hundreds of tokens: a 200-tpm key cannot send it.
    key = cluster.key(tpm=200)

    [response] = anyio.run(cluster.fire, key["key"], 1, body(max_tokens=5))

    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "tokens" in error["message"]
    assert response.headers["x-should-retry"] == "false", "waiting cannot make it fit"
