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
from aperture.console.sessions import (
    COOKIE,
    cookie_header,
    csrf_matches,
    expired_cookie_header,
)
from aperture.errors import GatewayError, InvalidApiKeyError
from aperture.services import LiveSession, Services

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
    """The console under ``/console``; ``services.console_sessions`` holds its sessions."""
    return [
        Route("/console", _home, methods=["GET"]),
        Route("/console/signin", _signin, methods=["GET", "POST"]),
        Route("/console/signout", _signout, methods=["POST"]),
        Route("/console/static/{name}", _static, methods=["GET"]),
        Route("/console/{page}", _page, methods=["GET"]),
    ]


class _NoSession(Exception):
    """The page cannot tell whether the browser is signed in: the answer is this page."""

    def __init__(self, page: Response) -> None:
        self.page = page


async def _session(request: Request) -> LiveSession | None:
    """The browser's live session, or None.

    Raises:
        _NoSession: starting up, or the session store cannot answer (503 with the reason).
    """
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        return None
    try:
        return await services.console_sessions.get(request.cookies.get(COOKIE))
    except GatewayError as error:
        raise _NoSession(
            _html(render_signin(error.message), error.status_code, dict(error.headers))
        ) from error


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
    try:
        session = await _session(request)
    except _NoSession as away:
        return away.page
    if session is None:
        return _redirect("/console/signin")
    return _redirect("/console/overview")


async def _page(request: Request) -> Response:
    page = _PAGES.get(request.path_params["page"])
    if page is None:
        return _html(render_signin("There is no such console page."), 404)
    try:
        session = await _session(request)
    except _NoSession as away:
        return away.page
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
        principal = await services.keys.authenticate(key) if key else None
    except InvalidApiKeyError:
        principal = None
    except GatewayError as error:  # the key store is away: say so, not "wrong key"
        return _html(render_signin(error.message), error.status_code, dict(error.headers))
    if principal is None or not principal.is_admin:
        log.info("console sign-in refused")
        return _html(render_signin("That is not the master key or a valid admin key."), 401)
    try:
        opened = await services.console_sessions.open(principal)
    except GatewayError as error:  # the session store is away: nobody is signed in
        return _html(render_signin(error.message), error.status_code, dict(error.headers))
    return _redirect("/console/overview", cookie_header(opened.id, secure=_secure(request)))


async def _signout(request: Request) -> Response:
    try:
        session = await _session(request)
    except _NoSession as away:
        return away.page
    form = await _form(request)
    if session is not None and (
        not _same_origin(request) or not csrf_matches(session, form.get("csrf"))
    ):
        return _html(render_signin("Sign out from the console's own page."), 403)
    if session is not None:
        services: Services = request.app.state.services
        try:
            await services.console_sessions.close(session)
        except GatewayError as error:
            return _html(render_signin(error.message), error.status_code, dict(error.headers))
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
