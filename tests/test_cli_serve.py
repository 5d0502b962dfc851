"""``aperture serve`` as a newcomer runs it: the demo with keys, ``demo: true``, the ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.servers import reserve_port

_APERTURE = (sys.executable, "-m", "aperture")


def _free_port() -> int:
    with reserve_port() as sock:
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _serve(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """The gateway as a process; yields its public and admin base URLs once it is healthy."""
    public, admin = _free_port(), _free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("APERTURE_", "OTEL_"))}
    process = subprocess.Popen(
        [*_APERTURE, "serve", *("--port", str(public), "--admin-port", str(admin), *args)],
        cwd=cwd,
        env={**environment, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{public}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the gateway did not become healthy"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{public}", f"http://127.0.0.1:{admin}"
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _chat(url: str, model: str, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 200}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def keyed_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    cwd = tmp_path_factory.mktemp("keyed-demo")
    with _serve(cwd, env={"APERTURE_MASTER_KEY": "sk-demo-master"}) as urls:
        yield urls


def test_the_demo_takes_its_master_key_from_the_environment(
    keyed_demo: tuple[str, str],
) -> None:
    public, admin = keyed_demo
    assert _chat(public, "demo-vision").status_code == 401
    assert _chat(public, "demo-vision", "sk-demo-master").status_code == 200
    master = {"Authorization": "Bearer sk-demo-master"}
    issued = httpx.post(
        f"{admin}/v1/admin/keys",
        json={"name": "ci", "models": ["demo-vision"]},
        headers=master,
        timeout=10,
    )
    assert issued.status_code == 201, issued.text
    key = issued.json()["key"]
    assert _chat(public, "demo-vision", key).status_code == 200
    refused = _chat(public, "demo-text", key)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    # The refusal's audit event names the model the request asked for.
    request_id = refused.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while True:
        found = httpx.get(
            f"{admin}/v1/admin/audit", params={"request_id": request_id}, headers=master
        ).json()["data"]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    [event] = found
    assert (event["status"], event["error_code"], event["model"]) == (
        403,
        "model_not_allowed",
        "demo-text",
    )


def test_the_admin_api_of_an_open_gateway_says_it_needs_a_master_key(tmp_path: Path) -> None:
    with _serve(tmp_path) as (_, admin):
        answer = httpx.get(f"{admin}/v1/admin/keys", headers={"Authorization": "Bearer x"})
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "admin_disabled"
    assert "auth.master_key" in error["message"] and "invalid" not in error["message"].lower()


def test_one_line_includes_the_demo_catalog_in_a_config(tmp_path: Path) -> None:
    (tmp_path / "aperture.yaml").write_text(
        "demo: true\n"
        "providers: [{name: local, kind: openai, base_url: 'http://127.0.0.1:9/v1'}]\n"
        "models:\n"
        "  - {name: mine, provider: local}\n"
        "  - {name: demo-text, provider: emulator, upstream_model: emulator-vision,"
        " capabilities: [vision]}\n"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "aperture", "check-config", "aperture.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    with _serve(tmp_path, "--config", "aperture.yaml") as (public, _):
        names = {m["id"] for m in httpx.get(f"{public}/v1/models").json()["data"]}
        assert {"mine", "demo-vision", "demo-claude", "qwen3-vl-30b-instruct"} <= names
        assert _chat(public, "demo-claude").status_code == 200
        # A name the config gives itself wins over the demo's: this demo-text can see.
        image = {"type": "image_url", "image_url": {"url": _PNG}}
        seen = httpx.post(
            f"{public}/v1/chat/completions",
            json={"model": "demo-text", "messages": [{"role": "user", "content": [image]}]},
            timeout=30,
        )
        assert seen.status_code == 200, seen.text


_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def test_a_port_in_use_is_named_with_its_setting_and_option(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = subprocess.run(
            [*_APERTURE, "serve", "--port", str(_free_port()), "--admin-port", str(port)],
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if not k.startswith("APERTURE_")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert started.returncode == 1
    assert started.stderr.splitlines() == [
        f"aperture: cannot listen on 127.0.0.1:{port} for the admin API (server.admin_port): "
        "Address already in use. Stop what holds it, or choose another port with "
        "--admin-port N or server.admin_port in the config."
    ]
