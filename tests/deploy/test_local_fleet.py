"""deploy/local-fleet: three instances behind nginx on PostgreSQL and Redis, driven for real."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from aperture.console.sessions import COOKIE
from tests.api.test_control_plane import eventually
from tests.contract.services import drop_schema, schema_url

_ROOT = Path(__file__).resolve().parents[2]
_MASTER = "fleet-master-key-" + "x" * 24
_POSTGRES = "postgresql://127.0.0.1:5432/test"


def _reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _missing() -> str | None:
    if shutil.which("nginx") is None:
        return "nginx is not installed (apt-get install nginx)"
    if not _reachable(5432):
        return "PostgreSQL is not reachable on 127.0.0.1:5432"
    if not _reachable(6379):
        return "Redis is not reachable on 127.0.0.1:6379"
    return None


def _free_base() -> int:
    # Seven consecutive free ports: nginx, then three public/admin pairs.
    for base in range(21000, 40000, 97):
        if not any(_reachable(base + i) for i in range(7)):
            return base
    raise AssertionError("no free port range")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    base = _free_base()
    # A schema of the fleet's own: the shared database's public schema may hold any state
    # (another checkout's migrations), and the fleet's keys and budgets must not leak out.
    schema = f"aperture_fleet_{uuid.uuid4().hex[:12]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("APERTURE_")},
        "FLEET_DATABASE": schema_url(_POSTGRES, schema),
        "APERTURE_MASTER_KEY": _MASTER,
        "APERTURE": str(Path(sys.executable).with_name("aperture")),
    }
    started = subprocess.run(
        [str(_ROOT / "deploy" / "local-fleet"), "start", str(tmp_path), str(base)],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    try:
        assert started.returncode == 0, started.stderr
        yield tmp_path, base
    finally:
        subprocess.run(
            [str(_ROOT / "deploy" / "local-fleet"), "stop", str(tmp_path)], env=env, timeout=30
        )
        anyio.run(drop_schema, _POSTGRES, schema)


def _chat(base: int, key: str, **extra: object) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{base}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "demo-claude", "messages": [{"role": "user", "content": "hi"}], **extra},
        timeout=30,
    )


def test_the_fleet_spreads_shares_keys_and_survives_a_killed_instance(
    fleet: tuple[Path, int],
) -> None:
    directory, base = fleet
    # A key issued through instance 1's admin port...
    issued = httpx.post(
        f"http://127.0.0.1:{base + 2}/v1/admin/keys",
        headers={"Authorization": f"Bearer {_MASTER}"},
        json={"name": "fleet", "tenant": "acme"},
        timeout=30,
    )
    assert issued.status_code in (200, 201), issued.text
    key = issued.json()["key"]
    # ...works through nginx on every instance.
    for _ in range(9):
        answer = _chat(base, key)
        assert answer.status_code == 200, answer.text
    served = (directory / "logs" / "upstreams.log").read_text().split()
    addresses = {w for w in served if w.startswith("127.0.0.1:")}
    assert addresses == {f"127.0.0.1:{base + p}" for p in (1, 3, 5)}

    victim = int((directory / "i2.pid").read_text())
    for n in range(30):
        if n == 5:
            os.kill(victim, signal.SIGKILL)
        answer = _chat(base, key)
        assert answer.status_code == 200, (n, answer.text)
    survivors = (directory / "logs" / "upstreams.log").read_text().splitlines()[-10:]
    assert all(f":{base + 3} " not in line.split(",")[-1] + " " for line in survivors)


def test_a_budget_holds_across_the_instances(fleet: tuple[Path, int]) -> None:
    directory, base = fleet
    issued = httpx.post(
        f"http://127.0.0.1:{base + 4}/v1/admin/keys",
        headers={"Authorization": f"Bearer {_MASTER}"},
        json={"name": "capped", "tenant": "acme", "budget": {"tokens": 100, "period": "total"}},
        timeout=30,
    )
    assert issued.status_code in (200, 201), issued.text
    key = issued.json()["key"]
    # Requests go round the three instances; the one shared budget stops them all.
    statuses = [_chat(base, key, max_tokens=16).status_code for _ in range(40)]
    assert 200 in statuses
    assert statuses[-3:] == [429, 429, 429], statuses
    log = (directory / "logs" / "upstreams.log").read_text().splitlines()
    chats = [line.split() for line in log if line.endswith((" 200", " 429"))][-40:]
    assert len({addr for addr, _ in chats}) == 3  # every instance saw the shared budget


def test_a_console_session_is_honoured_and_ended_by_every_instance(
    fleet: tuple[Path, int],
) -> None:
    _, base = fleet
    admins = [f"http://127.0.0.1:{base + p}" for p in (2, 4, 6)]
    with httpx.Client(base_url=admins[0], timeout=30) as client:
        signed_in = client.post("/console/signin", data={"key": _MASTER})
        assert signed_in.status_code == 303, signed_in.text
        page = client.get("/console/overview")
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert token is not None
    cookies = {COOKIE: client.cookies[COOKIE]}

    def keys(admin: str) -> int:
        return httpx.get(f"{admin}/v1/admin/keys", cookies=cookies, timeout=30).status_code

    # Made on instance 1, known to all three: the session lives in the shared PostgreSQL.
    assert [keys(admin) for admin in admins] == [200, 200, 200]
    out = httpx.post(
        f"{admins[2]}/console/signout", data={"csrf": token.group(1)}, cookies=cookies, timeout=30
    )
    assert out.status_code == 303
    assert keys(admins[2]) == 401
    # The others trust their cached copy for auth.console_cache_s (2 s) at most.
    eventually(lambda: keys(admins[0]) == 401 and keys(admins[1]) == 401)
