"""Azure OpenAI: the Chat Completions wire format behind deployments and an ``api-key``.

Pure. ``base_url`` is the resource endpoint (``https://<name>.openai.azure.com``); the
upstream model is the deployment name. An endpoint ending in ``/openai/v1`` uses Azure's
v1 API, where the model travels in the body as with OpenAI itself.
"""

from __future__ import annotations

from urllib.parse import quote

from aperture.model import ChatRequest, Target
from aperture.providers.openai import OpenAIProvider
from aperture.upstream import UpstreamRequest

__all__ = ["DEFAULT_API_VERSION", "AzureProvider"]

DEFAULT_API_VERSION = "2024-10-21"


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
