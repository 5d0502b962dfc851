"""Console sessions: the signed-in key kept server-side, behind a random cookie.

The browser holds only a random session id in an HttpOnly, SameSite=Strict cookie (Secure
when the console is reached over HTTPS); the key it signed in with stays here, so it is
never in a URL, in the page, or readable by a script. Every state-changing call must also
carry the session's CSRF token in ``x-csrf-token``: SameSite=Strict already keeps other
sites' requests cookie-less in current browsers, and the token covers older ones and
same-site neighbours.

Sessions live in this process's memory: a restart signs everyone out, and with
``--workers N`` a session is known only to the worker that made it (sign in again when a
request lands elsewhere). Each session re-presents its key on every call, so a revoked or
expired admin key ends its sessions at once.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aperture.errors import CsrfError

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "SAFE_METHODS",
    "Session",
    "Sessions",
    "cookie_header",
    "expired_cookie_header",
    "session_key",
]

COOKIE = "aperture_console"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_IDLE_S = 8 * 3600.0
"""A session unused this long is gone: a working day, no longer."""
_MAX_SESSIONS = 1000
"""The oldest session goes first when more sign in: memory stays bounded."""


@dataclass(slots=True)
class Session:
    id: str
    key: str
    """The master or admin key the operator signed in with: presented on each admin call."""
    csrf: str
    last_used: float = field(default=0.0)

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf)


class Sessions:
    """The signed-in sessions of this process, by id, least recently used first."""

    def __init__(
        self,
        *,
        idle_s: float = _IDLE_S,
        limit: int = _MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idle_s = idle_s
        self._limit = limit
        self._clock = clock
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def open(self, key: str) -> Session:
        """A new session for ``key``, already checked to be an admin key by the caller."""
        session = Session(
            id=secrets.token_urlsafe(32),
            key=key,
            csrf=secrets.token_urlsafe(32),
            last_used=self._clock(),
        )
        self._by_id[session.id] = session
        while len(self._by_id) > self._limit:
            self._by_id.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session ``session_id`` names, its idle clock restarted; None if none."""
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_used > self._idle_s:
            del self._by_id[session_id]
            return None
        session.last_used = now
        self._by_id.move_to_end(session_id)
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)

    def of(self, cookies: Mapping[str, str]) -> Session | None:
        """The session a request's cookies carry, if it is live."""
        return self.get(cookies.get(COOKIE))

    def __len__(self) -> int:
        return len(self._by_id)


def cookie_header(session: Session, *, secure: bool) -> str:
    """The ``Set-Cookie`` value that hands ``session`` to the browser.

    Path ``/``: the admin API the console's scripts call lives beside ``/console``.
    No ``Max-Age``: the cookie ends with the browser session, the server-side one sooner.
    """
    flags = "; Secure" if secure else ""
    return f"{COOKIE}={session.id}; Path=/; HttpOnly; SameSite=Strict{flags}"


def expired_cookie_header(*, secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{flags}"


def session_key(
    sessions: Sessions, method: str, cookies: Mapping[str, str], headers: Mapping[str, str]
) -> str | None:
    """The key a console session presents for an admin call, or None without a session.

    Raises:
        CsrfError: a state-changing call whose ``x-csrf-token`` is not the session's.
    """
    session = sessions.of(cookies)
    if session is None:
        return None
    if method not in SAFE_METHODS and not session.csrf_matches(headers.get(CSRF_HEADER)):
        raise CsrfError(
            "A console call that changes state needs the session's token in x-csrf-token; "
            "reload the console page to get it."
        )
    return session.key
