"""The emulator application: each emulated provider mounted under its own prefix."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from aperture.emulator import anthropic, azure, cohere, gemini, mistral, ollama, openai
from aperture.settings import extras

__all__ = ["create_emulator_app"]


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_emulator_app() -> Starlette:
    """A fresh app holding no state: every answer depends only on the request.

    Bedrock's emulator validates with botocore's service model: it is mounted only where
    the bedrock extra is installed (the demo then leaves Bedrock out too)."""
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/openai", routes=openai.routes()),
        Mount("/azure", routes=azure.routes()),
        # An OpenAI-compatible server (vLLM): the same wire, unknown fields ignored.
        Mount("/vllm", routes=openai.routes(strict=False)),
        Mount("/anthropic", routes=anthropic.routes()),
        Mount("/gemini", routes=gemini.routes()),
        Mount("/mistral", routes=mistral.routes()),
        Mount("/cohere", routes=cohere.routes()),
        Mount("/ollama", routes=ollama.routes()),
    ]
    if extras.installed("bedrock"):
        from aperture.emulator import bedrock

        routes.insert(6, Mount("/bedrock", routes=bedrock.routes()))
    return Starlette(routes=routes)
