"""Who may call the admin API: the master key or an admin key, as a Bearer (or ``x-api-key``)
header, or through a console session (its cookie, plus the CSRF token for changes)."""

from __future__ import annotations

from starlette.requests import Request

from aperture.api.auth import presented_key
from aperture.console import Sessions, session_key
from aperture.errors import AdminDisabledError, CsrfError, GatewayError, InvalidApiKeyError
from aperture.governance.keys import INVALID_KEY_MESSAGE
from aperture.services import Services

__all__ = ["admin_key", "admin_services", "refusal_headers"]


def admin_key(request: Request) -> str | None:
    """The key this admin call presents: its header's, else its console session's.

    A header wins: a script with a key never depends on a cookie the browser happens to hold.

    Raises:
        CsrfError: a session's state-changing call without the session's CSRF token.
    """
    key = presented_key(request)
    if key is not None:
        return key
    sessions: Sessions | None = getattr(request.app.state, "console_sessions", None)
    if sessions is None:
        return None
    return session_key(sessions, request.method, request.cookies, request.headers)


async def admin_services(request: Request) -> tuple[Services, str]:
    """The services, and the admin key the call was authenticated with.

    Raises:
        GatewayError: starting up (500), the gateway runs open (403 ``admin_disabled``), no
            admin key (401), a session's change without its CSRF token (403).
    """
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise GatewayError("The gateway is starting; try again in a moment.")
    if not services.auth_required:
        # No master key, no admin: an open gateway has no one to authenticate admins against,
        # so no key can help, and the answer says what would.
        raise AdminDisabledError(
            "The admin API needs auth.master_key, and this gateway runs open. Set "
            "auth.master_key in the config (or APERTURE_MASTER_KEY for the built-in demo), "
            "restart, and send it as `Authorization: Bearer <key>`."
        )
    key = admin_key(request)
    if key is None or not (await services.keys.authenticate(key)).is_admin:
        raise InvalidApiKeyError(INVALID_KEY_MESSAGE)
    return services, key


def refusal_headers(error: GatewayError) -> dict[str, str]:
    """The headers of an admin error; a caller refused at the door also loses the connection:
    its body was never read, so the connection cannot carry another request."""
    headers = dict(error.headers)
    if isinstance(error, InvalidApiKeyError | CsrfError | AdminDisabledError):
        headers["connection"] = "close"
    return headers
