"""``GET /v1/models``: the OpenAI model list, with capabilities on request."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from aperture.api.auth import authenticate
from aperture.api.render import error_response
from aperture.dialects.openai.outbound import render_error
from aperture.errors import GatewayError
from aperture.routing.catalog import ModelEntry
from aperture.services import Services

__all__ = ["list_models", "model_entry"]

_CAPABILITIES = (
    "vision",
    "audio",
    "video",
    "image_output",
    "tools",
    "json_mode",
    "logprobs",
    "choices",
    "reasoning",
)


async def list_models(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        await authenticate(request, services)
    except GatewayError as error:
        return error_response(error, "", render_error)
    include_meta = request.query_params.get("include_meta", "").lower() in ("true", "1", "yes")
    data = [
        model_entry(entry, services, include_meta) for entry in services.catalog.current.entries
    ]
    return Response(
        msgspec.json.encode({"object": "list", "data": data}), media_type="application/json"
    )


def model_entry(entry: ModelEntry, services: Services, include_meta: bool) -> dict[str, Any]:
    """One model in the OpenAI list shape, with ``_meta`` when asked."""
    model: dict[str, Any] = {
        "id": entry.name,
        "object": "model",
        "created": 0,
        "owned_by": entry.target.provider.name,
    }
    if include_meta:
        images = services.settings.images
        max_images = entry.constraints.max_images or images.max_images_per_request
        model["_meta"] = {
            "capabilities": {c: entry.can(c) for c in _CAPABILITIES},
            "provider": entry.target.provider.name,
            "provider_kind": entry.target.provider.kind,
            "aliases": list(entry.aliases),
            "url_policy": entry.url_policy,
            "limits": {
                "max_images": max_images,
                "max_image_bytes": images.max_image_bytes,
                "max_image_pixels": images.max_image_pixels,
                "min_max_tokens": entry.constraints.min_max_tokens,
            },
        }
    return model
