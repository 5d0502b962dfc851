"""Who may call the admin API: the master key or an admin key, as a Bearer (or ``x-api-key``)
header, or through a console session (its cookie, plus the CSRF token for changes)."""

from __future__ import annotations

from starlette.requests import Request

from aperture.api.auth import presented_key
from aperture.console import console_session
from aperture.errors import AdminDisabledError, CsrfError, GatewayError, InvalidApiKeyError
from aperture.governance.keys import INVALID_KEY_MESSAGE, Principal
from aperture.services import Services

__all__ = ["admin_principal", "admin_services", "refusal_headers"]


async def admin_principal(request: Request, services: Services) -> Principal | None:
    """Who this admin call is: its header key's principal, else its console session's.

    A header wins: a script with a key never depends on a cookie the browser happens to hold.

    Raises:
        InvalidApiKeyError: the header's key is not valid.
        CsrfError: a session's state-changing call without the session's CSRF token.
        ServiceUnavailableError: the key or session store cannot be asked.
    """
    key = presented_key(request)
    if key is not None:
        return await services.keys.authenticate(key)
    session = await console_session(
        services.console_sessions, request.method, request.cookies, request.headers
    )
    return None if session is None else session.principal


async def admin_services(request: Request) -> tuple[Services, Principal]:
    """The services, and the admin principal the call was authenticated as.

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
    principal = await admin_principal(request, services)
    if principal is None or not principal.is_admin:
        raise InvalidApiKeyError(INVALID_KEY_MESSAGE)
    return services, principal


def refusal_headers(error: GatewayError) -> dict[str, str]:
    """The headers of an admin error; a caller refused at the door also loses the connection:
    its body was never read, so the connection cannot carry another request."""
    headers = dict(error.headers)
    if isinstance(error, InvalidApiKeyError | CsrfError | AdminDisabledError):
        headers["connection"] = "close"
    return headers
