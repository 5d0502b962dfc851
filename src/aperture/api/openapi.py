"""The OpenAPI documents of the public and admin APIs, generated from the wire types.

The request schemas come from the same msgspec Structs that decode the requests, so the
documents cannot drift from what the gateway accepts.
"""

from __future__ import annotations

from typing import Any

import msgspec

from aperture import __version__
from aperture.dialects.anthropic.wire import CountTokensRequest, MessagesRequest
from aperture.dialects.c1.inbound import C1ChatRequest
from aperture.dialects.openai.images import ImageGenerationRequest
from aperture.dialects.openai.wire import ChatCompletionRequest
from aperture.dialects.responses.wire import ResponsesRequest
from aperture.settings import ModelSettings, RouteSettings

__all__ = ["admin_document", "public_document"]

_REF = "#/components/schemas/{name}"
_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "param": {"type": ["string", "null"]},
            },
            "required": ["type", "code", "message", "param"],
        }
    },
}


def _document(
    title: str, operations: list[tuple[str, str, str, type[Any] | None]]
) -> dict[str, Any]:
    bodies = [body for *_, body in operations if body is not None]
    refs, components = msgspec.json.schema_components(bodies, ref_template=_REF)
    by_type = dict(zip(bodies, refs, strict=True))
    components["Error"] = _ERROR
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, body in operations:
        operation: dict[str, Any] = {
            "summary": summary,
            "responses": {
                "200": {"description": "Success"},
                "4XX": {
                    "description": "A clear error with a stable code and the field's path",
                    "content": {
                        "application/json": {"schema": {"$ref": _REF.format(name="Error")}}
                    },
                },
            },
        }
        if body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": by_type[body]}},
            }
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


class _KeyRequest(msgspec.Struct, kw_only=True):
    name: str
    tenant: str | None = None
    models: list[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    expires_at: str | None = None
    admin: bool = False


def public_document() -> dict[str, Any]:
    return _document(
        "Aperture public API",
        [
            ("post", "/v1/chat/completions", "OpenAI Chat Completions", ChatCompletionRequest),
            ("post", "/v1/messages", "Anthropic Messages", MessagesRequest),
            (
                "post",
                "/v1/messages/count_tokens",
                "Anthropic token count; x-aperture-token-count says provider or estimate",
                CountTokensRequest,
            ),
            ("post", "/v1/responses", "OpenAI Responses", ResponsesRequest),
            ("get", "/v1/responses/{response_id}", "A kept Responses answer", None),
            ("delete", "/v1/responses/{response_id}", "Forget a kept Responses answer", None),
            ("post", "/c1/chat", "One message and an images array", C1ChatRequest),
            ("post", "/v1/images/generations", "OpenAI Images: generate", ImageGenerationRequest),
            ("post", "/v1/images/edits", "OpenAI Images: edit (multipart/form-data)", None),
            ("get", "/v1/models", "Models; ?include_meta=true adds capabilities", None),
            ("get", "/healthz", "Liveness", None),
            ("get", "/readyz", "Readiness", None),
            ("get", "/metrics", "Prometheus metrics", None),
        ],
    )


def admin_document() -> dict[str, Any]:
    return _document(
        "Aperture admin API",
        [
            ("get", "/v1/admin/keys", "List API keys (never their secrets)", None),
            ("post", "/v1/admin/keys", "Issue an API key; the secret is shown once", _KeyRequest),
            ("get", "/v1/admin/keys/{key_id}", "One API key", None),
            ("delete", "/v1/admin/keys/{key_id}", "Revoke an API key", None),
            ("get", "/v1/admin/routes", "List routes", None),
            ("post", "/v1/admin/routes", "Create a route", RouteSettings),
            ("get", "/v1/admin/routes/{doc_id}", "One route", None),
            ("put", "/v1/admin/routes/{doc_id}", "Replace a route", RouteSettings),
            ("delete", "/v1/admin/routes/{doc_id}", "Delete a route", None),
            ("get", "/v1/admin/models", "List models", None),
            ("post", "/v1/admin/models", "Create a model", ModelSettings),
            ("get", "/v1/admin/models/{doc_id}", "One model", None),
            ("put", "/v1/admin/models/{doc_id}", "Replace a model", ModelSettings),
            ("delete", "/v1/admin/models/{doc_id}", "Delete a model", None),
            ("get", "/v1/admin/audit", "Audit events; ?format=jsonl exports", None),
            ("get", "/v1/admin/budgets", "Budgets in their current window, with spend", None),
            ("get", "/v1/admin/stats", "Metrics totals, breaker states and spend", None),
            (
                "post",
                "/v1/admin/playground/{dialect}",
                "Send a chat, messages, responses or c1 body as this admin key",
                None,
            ),
            (
                "get",
                "/v1/admin/playground/{request_id}",
                "What a playground request sent upstream, base64 elided",
                None,
            ),
            ("get", "/metrics", "Prometheus metrics, with server.metrics_port: admin", None),
        ],
    )
