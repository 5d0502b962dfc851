"""The Azure OpenAI emulator: OpenAI's wire behind Azure's paths and its ``api-key`` header.

Mounted under ``/azure``, so a provider's ``base_url`` is ``<emulator>/azure`` (the resource
endpoint) or ``<emulator>/azure/openai/v1`` (Azure's v1 API). Deployment paths need an
``api-version`` query, as Azure's do; the answers are the OpenAI emulator's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from aperture.emulator import openai, openai_responses

__all__ = ["routes"]

Endpoint = Callable[[Request], Awaitable[Response]]

# Azure's own wording for a missing or wrong key, and for a path without api-version.
ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
NOT_FOUND = "Resource not found"


def routes() -> list[BaseRoute]:
    chat, answer = openai.chat_completions, openai.authorized(openai_responses.responses)
    return [
        Route("/openai/deployments/{deployment}/chat/completions", _azure(chat, versioned=True),
              methods=["POST"]),
        Route("/openai/responses", _azure(answer, versioned=True), methods=["POST"]),
        Route("/openai/v1/chat/completions", _azure(chat), methods=["POST"]),
        Route("/openai/v1/responses", _azure(answer), methods=["POST"]),
    ]  # fmt: skip


def _azure(endpoint: Endpoint, *, versioned: bool = False) -> Endpoint:
    async def answer(request: Request) -> Response:
        key = request.headers.get("api-key", "").strip()
        if not key:
            return _error(401, "401", ACCESS_DENIED)
        if versioned and not request.query_params.get("api-version"):
            return _error(404, "404", NOT_FOUND)
        # The OpenAI emulator's checks expect a bearer token: the key is one.
        headers = [(k, v) for k, v in request.scope["headers"] if k != b"authorization"]
        headers.append((b"authorization", b"Bearer " + key.encode()))
        return await endpoint(Request({**request.scope, "headers": headers}, request.receive))

    return answer


def _error(status: int, code: str, message: str) -> Response:
    body = msgspec.json.encode({"error": {"code": code, "message": message}})
    return Response(body, status_code=status, media_type="application/json")
