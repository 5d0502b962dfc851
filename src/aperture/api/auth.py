"""Who is calling: with ``auth.master_key`` set, every public request needs a key."""

from __future__ import annotations

from starlette.requests import Request

from aperture.governance.keys import Principal
from aperture.services import Services

__all__ = ["PRINCIPAL", "authenticate", "presented_key"]

_OPEN = Principal()
# A scope key no client can set (scopes are built in process): the playground runs a public
# endpoint as the console's signed-in admin, whose key secret the gateway does not hold.
PRINCIPAL = "aperture.principal"


def presented_key(request: Request) -> str | None:
    """The key from ``x-api-key`` or ``Authorization: Bearer``, if any."""
    # One pass over the raw headers (each header's first value, as ``request.headers``
    # reads them): a lookup there scans them all, and a missing one raises inside.
    api_key: bytes | None = None
    authorization: bytes | None = None
    for name, value in request.scope["headers"]:
        if name == b"x-api-key":
            api_key = value if api_key is None else api_key
        elif name == b"authorization":
            authorization = value if authorization is None else authorization
    if api_key:
        return api_key.decode("latin-1")
    header = authorization.decode("latin-1") if authorization is not None else ""
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


async def authenticate(request: Request, services: Services) -> Principal:
    """The caller's principal; one uniform 401 for missing, unknown, revoked or expired keys.

    Raises:
        InvalidApiKeyError: a key is required and the one presented is not valid.
        ServiceUnavailableError: a key this process has not seen yet, while the key store
            cannot be asked about it (503: the key may well be valid).
    """
    if not services.auth_required:
        return _OPEN
    given = request.scope.get(PRINCIPAL)
    if isinstance(given, Principal):
        return given
    return await services.keys.authenticate(presented_key(request))
