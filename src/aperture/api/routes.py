"""The public API at a glance."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from aperture.api.chat import (
    ANTHROPIC,
    C1,
    IMAGE_EDITS,
    IMAGE_GENERATIONS,
    OPENAI,
    RESPONSES,
    chat_endpoint,
    count_tokens,
)
from aperture.api.health import healthz, metrics_endpoint, readyz
from aperture.api.models import list_models
from aperture.api.openapi import public_document
from aperture.api.responses import delete_response, get_response

__all__ = ["Endpoint", "direct_routes", "public_routes"]


Endpoint = Callable[[Request], Awaitable[ASGIApp]]
"""A Starlette endpoint: it answers a request with a response (an ASGI app)."""


def direct_routes() -> dict[str, Endpoint]:
    """The chat endpoints, by path: each is POST only, and renders its own errors."""
    return {
        "/v1/chat/completions": chat_endpoint(OPENAI),
        "/chat/completions": chat_endpoint(OPENAI),
        "/c1/chat": chat_endpoint(C1),
        "/v1/messages": chat_endpoint(ANTHROPIC),
        "/v1/messages/count_tokens": count_tokens,
        "/v1/images/generations": chat_endpoint(IMAGE_GENERATIONS),
        "/v1/images/edits": chat_endpoint(IMAGE_EDITS),
        "/v1/responses": chat_endpoint(RESPONSES),
    }


def public_routes() -> list[BaseRoute]:
    """Every public route, the chat endpoints included (for other methods' 405s, and for
    the stack that serves them when tracing is on)."""
    chat = [Route(path, endpoint, methods=["POST"]) for path, endpoint in direct_routes().items()]
    return [
        *chat,
        Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
        Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint("public"), methods=["GET"]),
        Route("/openapi.json", _public_openapi, methods=["GET"]),
    ]


async def _public_openapi(request: Request) -> Response:
    return Response(msgspec.json.encode(public_document()), media_type="application/json")
