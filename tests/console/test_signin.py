"""Signing in to the console, and the admin API through its session, over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from aperture.app import create_apps
from aperture.console.sessions import COOKIE
from aperture.settings import Settings
from tests.api.test_control_plane import Gateway
from tests.servers import serve_together

_STATIC = (
    "console.css",
    "api.js",
    "overview.js",
    "requests.js",
    "keys.js",
    "models.js",
    "playground.js",
)


@contextmanager
def signed_in(gateway: Gateway, key: str = "sk-master") -> Iterator[tuple[httpx.Client, str]]:
    """A client holding a console session, and the session's CSRF token from the page."""
    with httpx.Client(base_url=gateway.admin, timeout=30) as client:
        answer = client.post("/console/signin", data={"key": key})
        assert answer.status_code == 303, answer.text
        page = client.get("/console/overview")
        assert page.status_code == 200
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert token is not None
        yield client, token.group(1)


def test_the_console_asks_to_sign_in_first(gateway: Gateway) -> None:
    for path in ("/console", "/console/overview", "/console/keys"):
        answer = httpx.get(f"{gateway.admin}{path}")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/signin"
    page = httpx.get(f"{gateway.admin}/console/signin")
    assert page.status_code == 200
    assert '<label for="key">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_signing_in_sets_a_strict_httponly_cookie_and_no_key_in_any_url(gateway: Gateway) -> None:
    answer = httpx.post(f"{gateway.admin}/console/signin", data={"key": "sk-master"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/overview"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "sk-master" not in cookie and "sk-master" not in answer.headers["location"]
    assert "Secure" not in cookie  # plain HTTP here; over HTTPS it is Secure


@pytest.mark.parametrize("key", ["", "wrong", "ap_000000000000_nope"])
def test_a_wrong_key_is_refused_with_the_form_again(gateway: Gateway, key: str) -> None:
    answer = httpx.post(f"{gateway.admin}/console/signin", data={"key": key})
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    assert 'aria-invalid="true"' in answer.text and "not the master key" in answer.text


def test_a_key_that_is_not_an_admin_key_cannot_sign_in(gateway: Gateway) -> None:
    plain = gateway.admin_call("POST", "/v1/admin/keys", json={"name": "app"}).json()["key"]
    answer = httpx.post(f"{gateway.admin}/console/signin", data={"key": plain})
    assert answer.status_code == 401


def test_a_sign_in_posted_from_another_site_is_refused(gateway: Gateway) -> None:
    answer = httpx.post(
        f"{gateway.admin}/console/signin",
        data={"key": "sk-master"},
        headers={"origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers


def test_the_session_reads_the_admin_api_and_changes_need_the_csrf_token(
    gateway: Gateway,
) -> None:
    with signed_in(gateway) as (client, csrf):
        assert client.get("/v1/admin/keys").status_code == 200
        refused = client.post("/v1/admin/keys", json={"name": "no-token"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "csrf_failed"
        wrong = client.post("/v1/admin/keys", json={"name": "x"}, headers={"x-csrf-token": "x"})
        assert wrong.status_code == 403
        made = client.post("/v1/admin/keys", json={"name": "token"}, headers={"x-csrf-token": csrf})
        assert made.status_code == 201, made.text


def test_an_admin_key_signs_in_and_its_revocation_ends_the_session(gateway: Gateway) -> None:
    issued = gateway.admin_call("POST", "/v1/admin/keys", json={"name": "ops", "admin": True})
    admin_key = issued.json()
    with signed_in(gateway, admin_key["key"]) as (client, _):
        assert client.get("/v1/admin/keys").status_code == 200
        gateway.admin_call("DELETE", f"/v1/admin/keys/{admin_key['id']}")
        assert client.get("/v1/admin/keys").status_code == 401


def test_signing_out_needs_the_token_and_ends_the_session(gateway: Gateway) -> None:
    with signed_in(gateway) as (client, csrf):
        assert client.post("/console/signout", data={"csrf": "forged"}).status_code == 403
        assert client.get("/v1/admin/keys").status_code == 200
        session_id = client.cookies[COOKIE]
        out = client.post("/console/signout", data={"csrf": csrf})
        assert out.status_code == 303 and out.headers["location"] == "/console/signin"
        assert "Max-Age=0" in out.headers["set-cookie"]
    # The old cookie, replayed, opens nothing.
    replayed = httpx.get(f"{gateway.admin}/v1/admin/keys", cookies={COOKIE: session_id})
    assert replayed.status_code == 401


def test_a_bearer_header_wins_over_a_session_cookie(gateway: Gateway) -> None:
    with signed_in(gateway) as (client, _):
        answer = client.get("/v1/admin/keys", headers={"authorization": "Bearer wrong"})
        assert answer.status_code == 401


def test_every_page_renders_and_its_assets_stay_under_200_kb(gateway: Gateway) -> None:
    with signed_in(gateway) as (client, _):
        css = len(client.get("/console/static/console.css").content)
        api = len(client.get("/console/static/api.js").content)
        for page in ("overview", "requests", "keys", "models", "playground"):
            answer = client.get(f"/console/{page}")
            assert answer.status_code == 200
            assert answer.headers["cache-control"] == "no-store"
            script = client.get(f"/console/static/{page}.js")
            assert script.headers["content-type"].startswith("text/javascript")
            total = len(answer.content) + css + api + len(script.content)
            assert total < 200_000, (page, total)
        assert client.get("/console/nope").status_code == 404


@pytest.mark.parametrize("name", ["../admin.py", "..%2F__init__.py", "sessions.py", ".hidden.js"])
def test_static_files_are_only_the_console_assets(gateway: Gateway, name: str) -> None:
    assert httpx.get(f"{gateway.admin}/console/static/{name}").status_code == 404
    for known in _STATIC:
        assert httpx.get(f"{gateway.admin}/console/static/{known}").status_code == 200


def test_an_open_gateway_says_the_console_needs_a_master_key(gateway_settings: Settings) -> None:
    with serve_together(*create_apps(gateway_settings)) as (_, admin):
        page = httpx.get(f"{admin}/console/signin")
        answer = httpx.post(f"{admin}/console/signin", data={"key": "anything"})
    assert page.status_code == 200 and "runs open" in page.text
    assert answer.status_code == 403
    assert "auth.master_key" in answer.text and "set-cookie" not in answer.headers
