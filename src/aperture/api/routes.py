"""The public API at a glance."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from aperture.api.chat import ANTHROPIC, C1, OPENAI, chat_endpoint
from aperture.api.health import healthz, metrics, readyz
from aperture.api.models import list_models
from aperture.api.openapi import public_document

__all__ = ["public_routes"]


def public_routes() -> list[BaseRoute]:
    return [
        Route("/v1/chat/completions", chat_endpoint(OPENAI), methods=["POST"]),
        Route("/chat/completions", chat_endpoint(OPENAI), methods=["POST"]),
        Route("/c1/chat", chat_endpoint(C1), methods=["POST"]),
        Route("/v1/messages", chat_endpoint(ANTHROPIC), methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", _public_openapi, methods=["GET"]),
    ]


async def _public_openapi(request: Request) -> Response:
    return Response(msgspec.json.encode(public_document()), media_type="application/json")
