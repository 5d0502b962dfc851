"""Azure OpenAI: the Chat Completions wire format behind deployments and an ``api-key``
(or, for models with ``wire: responses``, Azure's Responses API).

Pure. ``base_url`` is the resource endpoint (``https://<name>.openai.azure.com``); the
upstream model is the deployment name. An endpoint ending in ``/openai/v1`` uses Azure's
v1 API, where the model travels in the body as with OpenAI itself.
"""

from __future__ import annotations

from urllib.parse import quote

from aperture.model import ChatRequest, Target
from aperture.providers._json_body import encode_body
from aperture.providers.openai import OpenAIProvider
from aperture.providers.openai_responses import OpenAIResponsesProvider, responses_body
from aperture.upstream import UpstreamRequest

__all__ = [
    "DEFAULT_API_VERSION",
    "RESPONSES_API_VERSION",
    "AzureProvider",
    "AzureResponsesProvider",
]

DEFAULT_API_VERSION = "2024-10-21"
# The Chat Completions default predates Azure's Responses API, which needs a newer one.
RESPONSES_API_VERSION = "2025-04-01-preview"


class AzureProvider(OpenAIProvider):
    """The ``azure`` provider kind: everything but the URL and the key header is OpenAI's."""

    def build_request(self, request: ChatRequest, target: Target) -> UpstreamRequest:
        openai_request = super().build_request(request, target)
        provider = target.provider
        endpoint = (provider.base_url or "").rstrip("/")
        if endpoint.endswith("/openai/v1"):
            url = f"{endpoint}/chat/completions"
        else:
            deployment = quote(target.upstream_model, safe="")
            version = provider.api_version or DEFAULT_API_VERSION
            url = (
                f"{endpoint}/openai/deployments/{deployment}/chat/completions"
                f"?api-version={quote(version, safe='')}"
            )
        headers = {k: v for k, v in openai_request.headers.items() if k != "Authorization"}
        if provider.api_key:
            headers["api-key"] = provider.api_key
        return UpstreamRequest(url, headers, openai_request.body)


class AzureResponsesProvider(OpenAIResponsesProvider):
    """The ``azure`` kind, for models configured with ``wire: responses``: Azure's Responses
    API, the deployment named as the body's ``model``."""

    def build_request(self, request: ChatRequest, target: Target) -> UpstreamRequest:
        provider = target.provider
        endpoint = (provider.base_url or "").rstrip("/")
        if endpoint.endswith("/openai/v1"):
            url = f"{endpoint}/responses"
        else:
            version = provider.api_version or RESPONSES_API_VERSION
            url = f"{endpoint}/openai/responses?api-version={quote(version, safe='')}"
        headers = {"Content-Type": "application/json", **provider.headers}
        if provider.api_key:
            headers["api-key"] = provider.api_key
        return UpstreamRequest(url, headers, encode_body(responses_body(request, target)))
