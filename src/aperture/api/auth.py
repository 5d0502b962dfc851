"""Who may call the public API: with ``auth.master_key`` set, only holders of a key."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from aperture.errors import InvalidApiKeyError
from aperture.settings import Settings

__all__ = ["authenticate"]

_INVALID = "Invalid API key. Send it as `Authorization: Bearer <key>` or `x-api-key: <key>`."


def authenticate(request: Request, settings: Settings) -> None:
    """Accept the request or raise one uniform 401, whatever was wrong with the key.

    Raises:
        InvalidApiKeyError: missing or wrong key.
    """
    auth = settings.auth
    if auth is None or auth.master_key is None:
        return
    presented = request.headers.get("x-api-key") or ""
    header = request.headers.get("authorization", "")
    if not presented and header[:7].lower() == "bearer ":
        presented = header[7:].strip()
    if not hmac.compare_digest(presented.encode(), auth.master_key.encode()):
        raise InvalidApiKeyError(_INVALID)
