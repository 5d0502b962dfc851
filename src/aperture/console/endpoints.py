"""The console's own endpoints: sign in, sign out, the pages and their static files.

Nothing here changes the gateway: the pages' scripts do that through the admin API, with
the session cookie and its CSRF token, so the console adds no second way to change state.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from aperture.console.pages import PAGES, render_page, render_signin, static_asset
from aperture.console.sessions import Sessions, cookie_header, expired_cookie_header
from aperture.errors import GatewayError, InvalidApiKeyError
from aperture.services import Services

__all__ = ["console_routes"]

log = logging.getLogger("aperture.console")

_MAX_FORM_BYTES = 8 * 1024
_PAGES = {page.slug: page for page in PAGES}
# Scripts, styles and requests only from the admin port itself; images also from the
# data: and blob: URLs the playground previews. No inline script, no framing.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "content-security-policy": _CSP,
    "cache-control": "no-store",
    "referrer-policy": "same-origin",  # "no-referrer" would make form posts say Origin: null
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


def console_routes() -> list[BaseRoute]:
    """The console under ``/console``; ``app.state.console_sessions`` holds its sessions."""
    return [
        Route("/console", _home, methods=["GET"]),
        Route("/console/signin", _signin, methods=["GET", "POST"]),
        Route("/console/signout", _signout, methods=["POST"]),
        Route("/console/static/{name}", _static, methods=["GET"]),
        Route("/console/{page}", _page, methods=["GET"]),
    ]


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.console_sessions
    return sessions


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(body, status, headers={**_PAGE_HEADERS, **(headers or {})})


def _redirect(to: str, cookie: str | None = None) -> Response:
    response = RedirectResponse(to, status_code=303, headers={"cache-control": "no-store"})
    if cookie is not None:
        response.headers.append("set-cookie", cookie)
    return response


async def _home(request: Request) -> Response:
    if _sessions(request).of(request.cookies) is None:
        return _redirect("/console/signin")
    return _redirect("/console/overview")


async def _page(request: Request) -> Response:
    page = _PAGES.get(request.path_params["page"])
    if page is None:
        return _html(render_signin("There is no such console page."), 404)
    session = _sessions(request).of(request.cookies)
    if session is None:
        return _redirect("/console/signin")
    return _html(render_page(page, session.csrf))


_OPEN_GATEWAY = (
    "The console needs auth.master_key, and this gateway runs open. Set it in the config "
    "(or APERTURE_MASTER_KEY for the built-in demo) and restart."
)


async def _signin(request: Request) -> Response:
    services: Services | None = getattr(request.app.state, "services", None)
    if request.method == "GET":
        # An open gateway says so at once, rather than after a key has been typed.
        open_gateway = services is not None and not services.auth_required
        return _html(render_signin(_OPEN_GATEWAY if open_gateway else None))
    if not _same_origin(request):
        return _html(render_signin("Sign in from the console's own page."), 403)
    key = (await _form(request)).get("key", "").strip()
    if services is None:
        return _html(render_signin("The gateway is starting; try again in a moment."), 503)
    if not services.auth_required:
        return _html(render_signin(_OPEN_GATEWAY), 403)
    try:
        admin = bool(key) and (await services.keys.authenticate(key)).is_admin
    except InvalidApiKeyError:
        admin = False
    except GatewayError as error:  # the key store is away: say so, not "wrong key"
        return _html(render_signin(error.message), error.status_code)
    if not admin:
        log.info("console sign-in refused")
        return _html(render_signin("That is not the master key or a valid admin key."), 401)
    session = _sessions(request).open(key)
    return _redirect("/console/overview", cookie_header(session, secure=_secure(request)))


async def _signout(request: Request) -> Response:
    sessions = _sessions(request)
    session = sessions.of(request.cookies)
    form = await _form(request)
    if session is not None and (
        not _same_origin(request) or not session.csrf_matches(form.get("csrf"))
    ):
        return _html(render_signin("Sign out from the console's own page."), 403)
    if session is not None:
        sessions.close(session.id)
    return _redirect("/console/signin", expired_cookie_header(secure=_secure(request)))


async def _static(request: Request) -> Response:
    found = static_asset(request.path_params["name"])
    if found is None:
        return Response("Not found", 404, media_type="text/plain")
    body, media_type = found
    # Small files, changed with each release: revalidated, never stale after an upgrade.
    return Response(
        body,
        media_type=media_type,
        headers={"cache-control": "no-cache", "x-content-type-options": "nosniff"},
    )


def _same_origin(request: Request) -> bool:
    """A form post from a page of this port: the Origin header, when sent, names its host."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


async def _form(request: Request) -> dict[str, str]:
    """A small url-encoded form, first value of each field; anything longer is cut off."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            break
    fields = parse_qs(body[:_MAX_FORM_BYTES].decode("utf-8", "replace"))
    return {name: values[0] for name, values in fields.items()}
