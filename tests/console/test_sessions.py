"""Console sessions and the admin call's key: cookies, CSRF, expiry, bounds."""

from __future__ import annotations

import pytest

from aperture.console import CSRF_HEADER, Sessions, session_key
from aperture.console.sessions import COOKIE, cookie_header, expired_cookie_header
from aperture.errors import CsrfError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_is_found_by_its_cookie_and_holds_the_key_server_side() -> None:
    sessions = Sessions()
    session = sessions.open("sk-master")
    assert sessions.of({COOKIE: session.id}) is session
    assert session.key == "sk-master"
    assert "sk-master" not in cookie_header(session, secure=False)
    assert sessions.of({COOKIE: "forged"}) is None
    assert sessions.of({}) is None


def test_ids_and_csrf_tokens_are_random_and_distinct() -> None:
    sessions = Sessions()
    a, b = sessions.open("k"), sessions.open("k")
    assert a.id != b.id and a.csrf != b.csrf and a.id != a.csrf
    assert len(a.id) >= 40 and len(a.csrf) >= 40


def test_the_cookie_is_httponly_samesite_strict_and_secure_over_https() -> None:
    session = Sessions().open("k")
    plain = cookie_header(session, secure=False)
    assert plain == f"{COOKIE}={session.id}; Path=/; HttpOnly; SameSite=Strict"
    assert cookie_header(session, secure=True).endswith("; Secure")
    assert "Max-Age=0" in expired_cookie_header(secure=False)


def test_an_idle_session_expires_and_use_keeps_it_alive() -> None:
    clock = Clock()
    sessions = Sessions(idle_s=60, clock=clock)
    session = sessions.open("k")
    clock.now += 50
    assert sessions.get(session.id) is session
    clock.now += 50  # 100 s after opening, 50 s after its last use
    assert sessions.get(session.id) is session
    clock.now += 61
    assert sessions.get(session.id) is None
    assert len(sessions) == 0


def test_sign_out_closes_the_session() -> None:
    sessions = Sessions()
    session = sessions.open("k")
    sessions.close(session.id)
    assert sessions.get(session.id) is None
    sessions.close(None)  # signing out without a session is no error


def test_the_oldest_session_goes_when_the_bound_is_reached() -> None:
    sessions = Sessions(limit=2)
    first, second = sessions.open("a"), sessions.open("b")
    sessions.get(first.id)  # used: now the second is the least recently used
    third = sessions.open("c")
    assert sessions.get(second.id) is None
    assert sessions.get(first.id) is first and sessions.get(third.id) is third


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_reads_need_the_cookie_only(method: str) -> None:
    sessions = Sessions()
    session = sessions.open("sk-admin")
    assert session_key(sessions, method, {COOKIE: session.id}, {}) == "sk-admin"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_changes_need_the_sessions_csrf_token(method: str) -> None:
    sessions = Sessions()
    session = sessions.open("sk-admin")
    cookies = {COOKIE: session.id}
    assert session_key(sessions, method, cookies, {CSRF_HEADER: session.csrf}) == "sk-admin"
    with pytest.raises(CsrfError):
        session_key(sessions, method, cookies, {})
    with pytest.raises(CsrfError):
        session_key(sessions, method, cookies, {CSRF_HEADER: sessions.open("x").csrf})


def test_no_session_means_no_key_whatever_the_token() -> None:
    sessions = Sessions()
    assert session_key(sessions, "POST", {COOKIE: "nope"}, {CSRF_HEADER: "t"}) is None
