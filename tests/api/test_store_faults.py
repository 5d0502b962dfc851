"""Redis and PostgreSQL misbehave under a real gateway: no 500s, nothing lost, quick recovery.

Each store is reached through a ``FaultProxy`` that resets, blackholes, drops replies or
refuses connections while requests keep coming. Budgets fail closed (503), rate limits and
breakers fail open, the ledger spools, and once the fault ends the gateway is healthy again
within a bounded time, with exactly one ledger row per admitted request and counters that
equal the ledger.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import msgspec
import pytest

from aperture.app import create_apps
from aperture.settings import AuthSettings, Settings
from aperture.settings.governance import GovernanceSettings, PriceSettings
from aperture.settings.schema import StorageSettings
from aperture.storage import open_storage
from tests.contract.services import (  # noqa: F401
    fresh_postgres_url,
    postgres_server,
    redis_server,
)
from tests.faultproxy import FaultProxy, proxied_url
from tests.servers import serve_together

MASTER = {"authorization": "Bearer sk-master"}
BODY = {"model": "demo-text", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
# Generous: recovery takes about one redis_retry_s (0.5 s here) or one pool pre-ping, but a
# loaded CI machine can stretch that many times over.
RECOVERY_S = 60.0

FAULTS = ["reset", "blackhole", "drop_replies", "down"]


@dataclass
class Gateway:
    public: str
    admin: str
    database: str
    proxy: FaultProxy

    def key(self, **fields: Any) -> dict[str, Any]:
        created = httpx.post(
            f"{self.admin}/v1/admin/keys", headers=MASTER, json={"name": "k", **fields}, timeout=30
        )
        assert created.status_code == 201, created.text
        answer: dict[str, Any] = created.json()
        deadline = time.monotonic() + RECOVERY_S
        auth = {"authorization": f"Bearer {answer['key']}"}
        # The key cache catches up by polling; /v1/models costs no budget.
        while httpx.get(f"{self.public}/v1/models", headers=auth, timeout=30).status_code == 401:
            assert time.monotonic() < deadline, "the new key never reached the gateway"
            time.sleep(0.1)
        return answer

    def chat(self, key: dict[str, Any]) -> httpx.Response:
        headers = {"authorization": f"Bearer {key['key']}"}
        return httpx.post(
            f"{self.public}/v1/chat/completions", json=BODY, headers=headers, timeout=60
        )

    def budget(self, key: dict[str, Any]) -> dict[str, Any]:
        listing = httpx.get(
            f"{self.admin}/v1/admin/budgets",
            headers=MASTER,
            params={"key_id": key["id"]},
            timeout=30,
        )
        assert listing.status_code == 200, listing.text
        [line] = listing.json()["data"]
        return dict(line)

    def settled(self, key: dict[str, Any], *, holds: bool = True) -> dict[str, Any]:
        """The key's budget once the counter equals the ledger (and, with ``holds``, every
        hold is settled: a reserve whose reply was lost may leave one until it is released)."""
        deadline = time.monotonic() + RECOVERY_S
        while True:
            line = self.budget(key)
            free = line["reserved"]["tokens"] == 0 or not holds
            if free and line["spent"] == line["ledger"]:
                return line
            assert time.monotonic() < deadline, f"counters never matched the ledger: {line}"
            time.sleep(0.1)


def _settings(base: Settings, tmp_path: Path, database: str, redis: str) -> Settings:
    return msgspec.structs.replace(
        base,
        auth=AuthSettings(master_key="sk-master"),
        storage=StorageSettings(
            database=database,
            redis=redis,
            # Gateways of other test runs sharing this Redis would see this one, cut off from
            # it, as lost and settle its holds into their own ledgers.
            redis_prefix=f"aperture-{uuid.uuid4().hex[:12]}:",
            spool_dir=str(tmp_path / "spool"),
            redis_timeout_s=0.5,
            redis_retry_s=0.5,
            ledger_timeout_s=1.0,
        ),
        # One micro-dollar per token: a request's cost is its token count.
        governance=GovernanceSettings(
            prices=(PriceSettings(model="demo-text", input=1, output=1),)
        ),
    )


def _address(url: str, port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or port


@pytest.fixture
def behind_redis_proxy(
    gateway_settings: Settings,
    redis_server: str,  # noqa: F811
    tmp_path: Path,
) -> Iterator[Callable[[str], Gateway]]:
    """A gateway on SQLite whose Redis is reached through a fault proxy, on a given loop."""
    with FaultProxy(*_address(redis_server, 6379)) as proxy, contextlib.ExitStack() as stack:
        database = f"sqlite:///{tmp_path / 'gateway.db'}"

        def start(loop: str) -> Gateway:
            settings = _settings(
                gateway_settings, tmp_path, database, proxied_url(redis_server, proxy)
            )
            public, admin = stack.enter_context(serve_together(*create_apps(settings), loop=loop))
            return Gateway(public, admin, database, proxy)

        yield start


@pytest.fixture
def behind_postgres_proxy(
    gateway_settings: Settings,
    fresh_postgres_url: str,  # noqa: F811
    redis_server: str,  # noqa: F811
    tmp_path: Path,
) -> Iterator[Gateway]:
    """A gateway whose PostgreSQL is reached through a fault proxy (Redis direct), on uvloop."""
    with FaultProxy(*_address(fresh_postgres_url, 5432)) as proxy:
        database = proxied_url(fresh_postgres_url, proxy)
        settings = _settings(gateway_settings, tmp_path, database, redis_server)
        with serve_together(*create_apps(settings), loop="uvloop") as (public, admin):
            yield Gateway(public, admin, fresh_postgres_url, proxy)


def _fault(proxy: FaultProxy, fault: str) -> None:
    getattr(proxy, fault)()


def _until_ok(attempt: Callable[[], httpx.Response]) -> httpx.Response:
    deadline = time.monotonic() + RECOVERY_S
    while True:
        response = attempt()
        assert response.status_code != 500, response.text
        if response.status_code == 200:
            return response
        assert time.monotonic() < deadline, f"not recovered: {response.status_code} {response.text}"
        time.sleep(0.1)


async def _ledger_rows(database: str, request_ids: list[str]) -> Counter[str]:
    async with await open_storage(database, None) as storage:
        found: Counter[str] = Counter()
        for request_id in request_ids:
            for row in await storage.ledger.for_request(request_id):
                found[f"{request_id}:{row.kind}"] += 1
        return found


def _assert_one_row_each(database: str, request_ids: list[str]) -> None:
    rows = anyio.run(_ledger_rows, database, request_ids)
    assert rows == Counter({f"{rid}:settle": 1 for rid in request_ids})


@pytest.mark.parametrize(
    ("fault", "loop"),
    [(fault, "uvloop") for fault in FAULTS] + [("reset", "asyncio")],
)
def test_a_redis_fault_fails_budgets_closed_and_rate_limits_open_then_heals(
    behind_redis_proxy: Callable[[str], Gateway], fault: str, loop: str
) -> None:
    gateway = behind_redis_proxy(loop)
    budgeted = gateway.key(budget={"usd": 100})
    limited = gateway.key(rpm=10_000)
    admitted = [gateway.chat(budgeted) for _ in range(3)]
    assert [r.status_code for r in admitted] == [200] * 3
    gateway.settled(budgeted)  # nothing in flight when the fault starts

    _fault(gateway.proxy, fault)
    during = [gateway.chat(key) for _ in range(4) for key in (budgeted, limited)]
    budget_answers = Counter(r.status_code for r in during[0::2])
    assert set(budget_answers) <= {200, 503}, budget_answers
    for response in during[0::2]:
        if response.status_code == 503:
            assert response.json()["error"]["code"] == "service_unavailable"
            assert response.headers["retry-after"] == "1"
    if fault != "reset":  # a reset costs one connection; the rest find Redis unreachable
        assert budget_answers[503] >= 3, "budgets fail closed"
    assert [r.status_code for r in during[1::2]] == [200] * 4, "rate limits fail open"
    admitted += [r for r in during[0::2] if r.status_code == 200]

    gateway.proxy.heal()
    admitted.append(_until_ok(lambda: gateway.chat(budgeted)))
    admitted += [gateway.chat(budgeted) for _ in range(3)]
    assert all(r.status_code == 200 for r in admitted)

    line = gateway.settled(budgeted)
    costs = sum(r.json()["usage"]["total_tokens"] for r in admitted)
    assert line["ledger"]["tokens"] == costs, "every admitted request is in the ledger"
    _assert_one_row_each(gateway.database, [r.headers["x-request-id"] for r in admitted])


@pytest.mark.parametrize("fault", FAULTS)
def test_a_database_fault_loses_no_ledger_row_and_answers_admin_calls_503(
    behind_postgres_proxy: Gateway, fault: str
) -> None:
    gateway = behind_postgres_proxy
    budgeted = gateway.key(budget={"usd": 100})
    admitted = [gateway.chat(budgeted) for _ in range(3)]
    gateway.settled(budgeted)

    _fault(gateway.proxy, fault)
    # Keys are cached and the ledger spools: serving never waits on the database.
    during = [gateway.chat(budgeted) for _ in range(5)]
    assert [r.status_code for r in during] == [200] * 5, [r.text for r in during]
    admitted += during
    listing = httpx.get(f"{gateway.admin}/v1/admin/keys", headers=MASTER, timeout=60)
    assert listing.status_code in (200, 503), listing.text
    if listing.status_code == 503:
        assert listing.json()["error"]["code"] == "service_unavailable"
    if fault != "reset":
        assert listing.status_code == 503

    gateway.proxy.heal()
    _until_ok(lambda: httpx.get(f"{gateway.admin}/v1/admin/keys", headers=MASTER, timeout=60))
    # The key poller outlived the outage: a key made now reaches the public API.
    fresh = gateway.key(rpm=100)
    assert gateway.chat(fresh).status_code == 200

    line = gateway.settled(budgeted)
    costs = sum(r.json()["usage"]["total_tokens"] for r in admitted)
    assert line["ledger"]["tokens"] == costs, "the spooled rows reached the ledger"
    _assert_one_row_each(gateway.database, [r.headers["x-request-id"] for r in admitted])


@pytest.mark.parametrize("fault", ["down", "reset"])
def test_a_database_fault_answers_responses_but_continues_none_until_it_heals(
    behind_postgres_proxy: Gateway, fault: str
) -> None:
    gateway = behind_postgres_proxy
    url = f"{gateway.public}/v1/responses"

    def respond(**body: Any) -> httpx.Response:
        return httpx.post(url, json={"model": "demo-text", **body}, headers=MASTER, timeout=60)

    kept = respond(input="Remember me.")
    assert kept.status_code == 200, kept.text

    _fault(gateway.proxy, fault)
    # The answer still goes out (its record is lost, and logged); continuing needs the store.
    unkept = respond(input="Not kept.")
    assert unkept.status_code == 200, unkept.text
    refused = respond(input="And?", previous_response_id=kept.json()["id"])
    assert refused.status_code in (200, 503), refused.text
    if fault != "reset":  # a reset costs one connection; then the pool reconnects
        assert refused.status_code == 503
    if refused.status_code == 503:
        assert refused.json()["error"]["code"] == "service_unavailable"
        assert refused.headers["retry-after"] == "1"

    gateway.proxy.heal()
    continued = _until_ok(lambda: respond(input="And?", previous_response_id=kept.json()["id"]))
    assert 'Asked: "And?"' in continued.json()["output"][0]["content"][0]["text"]
