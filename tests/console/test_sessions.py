"""The console's side of a session: the cookie it sets and the CSRF rule for changes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aperture.console import CSRF_HEADER, console_session
from aperture.console.sessions import COOKIE, cookie_header, expired_cookie_header
from aperture.errors import CsrfError
from aperture.governance.console_sessions import ConsoleSessions, OpenedSession
from aperture.governance.keys import KeyRing, Principal
from aperture.storage import open_storage

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sessions() -> AsyncIterator[ConsoleSessions]:
    async with await open_storage("memory://") as storage:
        keys = KeyRing(storage.keys, b"pepper", "sk-master")
        yield ConsoleSessions(storage.sessions, keys, idle_s=60, max_s=600, cache_s=2)


async def opened(sessions: ConsoleSessions) -> OpenedSession:
    return await sessions.open(Principal())


async def test_ids_and_csrf_tokens_are_random_and_distinct(sessions: ConsoleSessions) -> None:
    a, b = await opened(sessions), await opened(sessions)
    assert a.id != b.id and a.csrf != b.csrf and a.id != a.csrf
    assert len(a.id) >= 40 and len(a.csrf) >= 40


def test_the_cookie_is_httponly_samesite_strict_and_secure_over_https() -> None:
    plain = cookie_header("abc", secure=False)
    assert plain == f"{COOKIE}=abc; Path=/; HttpOnly; SameSite=Strict"
    assert cookie_header("abc", secure=True).endswith("; Secure")
    assert "Max-Age=0" in expired_cookie_header(secure=False)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_reads_need_the_cookie_only(sessions: ConsoleSessions, method: str) -> None:
    session = await opened(sessions)
    found = await console_session(sessions, method, {COOKIE: session.id}, {})
    assert found is not None and found.principal.is_admin


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_changes_need_the_sessions_csrf_token(sessions: ConsoleSessions, method: str) -> None:
    session = await opened(sessions)
    cookies = {COOKIE: session.id}
    assert await console_session(sessions, method, cookies, {CSRF_HEADER: session.csrf})
    with pytest.raises(CsrfError):
        await console_session(sessions, method, cookies, {})
    other = await opened(sessions)
    with pytest.raises(CsrfError):
        await console_session(sessions, method, cookies, {CSRF_HEADER: other.csrf})


async def test_no_session_means_no_principal_whatever_the_token(
    sessions: ConsoleSessions,
) -> None:
    assert await console_session(sessions, "POST", {COOKIE: "nope"}, {CSRF_HEADER: "t"}) is None
    assert await console_session(sessions, "GET", {}, {}) is None


async def test_sign_out_closes_the_session(sessions: ConsoleSessions) -> None:
    session = await opened(sessions)
    live = await sessions.get(session.id)
    assert live is not None
    await sessions.close(live)
    assert await sessions.get(session.id) is None
