"""``GET`` and ``DELETE /v1/responses/{id}``: a kept Responses API answer, read back or
forgotten, by the key (or tenant) that made it."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from aperture.api.auth import authenticate
from aperture.api.render import error_response
from aperture.dialects.responses import outbound
from aperture.errors import GatewayError, PreviousResponseNotFoundError, quote
from aperture.services import Services

__all__ = ["delete_response", "get_response"]


def _not_found(response_id: str) -> PreviousResponseNotFoundError:
    return PreviousResponseNotFoundError(
        f"Response with id {quote(response_id)} not found.", param="response_id"
    )


async def get_response(request: Request) -> Response:
    services: Services = request.app.state.services
    response_id = request.path_params["response_id"]
    try:
        principal = await authenticate(request, services)
        stored = await services.responses.find(principal, response_id)
        if stored is None:
            raise _not_found(response_id)
        answer = services.responses.answer(stored)
        body = outbound.render_response(answer, stored.model or answer.model)
    except GatewayError as error:
        return error_response(error, "", outbound.render_error)
    return Response(body, media_type="application/json")


async def delete_response(request: Request) -> Response:
    services: Services = request.app.state.services
    response_id = request.path_params["response_id"]
    try:
        principal = await authenticate(request, services)
        if not await services.responses.forget(principal, response_id):
            raise _not_found(response_id)
    except GatewayError as error:
        return error_response(error, "", outbound.render_error)
    deleted = {"id": response_id, "object": "response.deleted", "deleted": True}
    return Response(msgspec.json.encode(deleted), media_type="application/json")
