"""Console sessions as the browser sees them: a random cookie, and a CSRF token for changes.

The browser holds only a random session id in an HttpOnly, SameSite=Strict cookie (Secure
when the console is reached over HTTPS); the session itself is kept in the shared database
(``services.console_sessions``), as the hash of that id and the admin key's id, so every
instance and worker behind a load balancer honours it and a restart keeps it. Every
state-changing call must also carry the session's CSRF token in ``x-csrf-token``:
SameSite=Strict already keeps other sites' requests cookie-less in current browsers, and the
token covers older ones and same-site neighbours.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from aperture.errors import CsrfError
from aperture.services import ConsoleSessions, LiveSession

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "SAFE_METHODS",
    "console_session",
    "cookie_header",
    "csrf_matches",
    "expired_cookie_header",
]

COOKIE = "aperture_console"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_matches(session: LiveSession, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(presented, session.csrf)


def cookie_header(session_id: str, *, secure: bool) -> str:
    """The ``Set-Cookie`` value that hands the session to the browser.

    Path ``/``: the admin API the console's scripts call lives beside ``/console``.
    No ``Max-Age``: the cookie ends with the browser session, the server-side one sooner.
    """
    flags = "; Secure" if secure else ""
    return f"{COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Strict{flags}"


def expired_cookie_header(*, secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{flags}"


async def console_session(
    sessions: ConsoleSessions,
    method: str,
    cookies: Mapping[str, str],
    headers: Mapping[str, str],
) -> LiveSession | None:
    """The session an admin call's cookie carries, or None without a live one.

    Raises:
        CsrfError: a state-changing call whose ``x-csrf-token`` is not the session's.
        ServiceUnavailableError: the session store cannot be asked about this session.
    """
    session = await sessions.get(cookies.get(COOKIE))
    if session is None:
        return None
    if method not in SAFE_METHODS and not csrf_matches(session, headers.get(CSRF_HEADER)):
        raise CsrfError(
            "A console call that changes state needs the session's token in x-csrf-token; "
            "reload the console page to get it."
        )
    return session
