"""The OpenAPI documents describe every route of both APIs, from the real wire types."""

from __future__ import annotations

import httpx
from starlette.routing import Route

from aperture.api.admin import create_admin_app
from aperture.api.openapi import admin_document, public_document
from aperture.api.routes import public_routes


def documented(document: dict[str, object]) -> set[tuple[str, str]]:
    paths = document["paths"]
    assert isinstance(paths, dict)
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def served(routes: list[object]) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in routes
        if isinstance(route, Route) and route.path != "/openapi.json"
        for method in (route.methods or ()) - {"HEAD"}
    }


def test_every_public_route_is_documented() -> None:
    missing = served(public_routes()) - documented(public_document())
    # /chat/completions is the same endpoint without the version prefix, for old clients.
    assert missing == {("POST", "/chat/completions")}


def test_every_admin_route_is_documented() -> None:
    # The console's pages are HTML for a browser, not API: its calls are the routes above.
    api = {(m, p) for m, p in served(create_admin_app().routes) if not p.startswith("/console")}
    assert api == documented(admin_document())


def test_the_chat_schema_is_the_decoder_s(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    schema = document["components"]["schemas"]["ChatCompletionRequest"]
    assert set(schema["required"]) == {"model", "messages"}
    assert "image_url" in document["components"]["schemas"]["ImageURLPart"]["properties"]
