"""The console's pages: a shell and one body per page, filled with ``string.Template``.

The server renders the frame (navigation, forms, empty tables); each page's module in
``static/`` fills it from the admin API. Every value put into a page is HTML-escaped here.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from string import Template
from typing import NamedTuple

__all__ = ["PAGES", "Page", "render_page", "render_signin", "static_asset"]


class Page(NamedTuple):
    slug: str
    title: str


PAGES = (
    Page("overview", "Overview"),
    Page("requests", "Requests"),
    Page("keys", "Keys"),
    Page("models", "Models and routes"),
    Page("playground", "Playground"),
)

_STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


@cache
def _template(name: str) -> Template:
    return Template(resources.files(__package__).joinpath("templates", name).read_text("utf-8"))


def render_page(page: Page, csrf: str) -> str:
    nav = "".join(
        f'<li><a href="/console/{p.slug}"'
        + (' aria-current="page"' if p == page else "")
        + f">{html.escape(p.title)}</a></li>"
        for p in PAGES
    )
    return _template("shell.html").substitute(
        title=html.escape(page.title),
        csrf=html.escape(csrf),
        nav=nav,
        body=_template(f"{page.slug}.html").template,
        script=f"{page.slug}.js",
    )


def render_signin(error: str | None = None) -> str:
    message = f'<p class="form-error" role="alert">{html.escape(error)}</p>' if error else ""
    invalid = 'aria-invalid="true"' if error else ""
    return _template("signin.html").substitute(error=message, invalid=invalid)


def static_asset(name: str) -> tuple[bytes, str] | None:
    """A file of ``static/`` and its media type; None for any other name (no paths)."""
    media_type = _STATIC_TYPES.get(name[name.rfind(".") :] if "." in name else "")
    if media_type is None or "/" in name or "\\" in name or name.startswith("."):
        return None
    asset = resources.files(__package__).joinpath("static", name)
    if not asset.is_file():
        return None
    return asset.read_bytes(), media_type
