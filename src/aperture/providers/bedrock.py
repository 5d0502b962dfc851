"""AWS Bedrock's Converse API (``POST /model/{modelId}/converse`` and ``/converse-stream``).

Pure like every adapter: builds Converse requests from the canonical model and parses
responses, ConverseStream frames and error answers back into it. The translation choices
are listed in ``_bedrock_request``; responses, streams and errors live in ``_bedrock_wire``.

Unlike the other adapters, a built request is not always complete. With an ``api_key`` (a
Bedrock API key) it carries ``Authorization: Bearer`` and is ready. Otherwise it is unsigned
and the dispatcher must call ``authorize`` (async: resolves AWS credentials off the event
loop, cached) or ``sign`` (sync, with credentials already resolved) before sending it,
and then send its URL byte for byte: SigV4 signs the path.

The region is the ``bedrock-runtime.<region>.amazonaws.com`` host of ``base_url`` when it is
one, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the AWS profile's ``region``. Streams
are ``application/vnd.amazon.eventstream``: decode them with ``upstream.eventstream`` and feed
the frames to ``stream_parser``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar
from urllib.parse import quote

from botocore.credentials import ReadOnlyCredentials

from aperture.errors import UpstreamError
from aperture.model import ChatRequest, ChatResponse, Target
from aperture.providers._bedrock_auth import AwsCredentialSource, region_from_url, sign_sigv4
from aperture.providers._bedrock_request import IMAGE_FORMATS, converse_body
from aperture.providers._bedrock_wire import (
    BedrockStreamParser,
    classify,
    error_name,
    parse_converse_response,
)
from aperture.providers._json_body import encode_body
from aperture.upstream import Framing, UpstreamRequest

__all__ = [
    "IMAGE_FORMATS",
    "STREAM_CONTENT_TYPE",
    "AwsCredentialSource",
    "BedrockProvider",
    "BedrockStreamParser",
    "endpoint",
]

STREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"


def endpoint(region: str) -> str:
    """The public Bedrock runtime endpoint of ``region``."""
    return f"https://bedrock-runtime.{region}.amazonaws.com"


class BedrockProvider:
    """The ``bedrock`` provider kind (Converse)."""

    stream_framing: ClassVar[Framing] = "aws-eventstream"
    stream_ends_with_body: ClassVar[bool] = False

    def __init__(self, credentials: AwsCredentialSource | None = None) -> None:
        self.credentials = credentials or AwsCredentialSource()

    def build_request(self, request: ChatRequest, target: Target) -> UpstreamRequest:
        """The request, complete with an API key, else unsigned (see ``authorize``)."""
        provider = target.provider
        body = converse_body(request, target.upstream_model)
        headers = {"Content-Type": "application/json", **provider.headers}
        if provider.api_key:
            headers["Authorization"] = f"Bearer {provider.api_key}"
        return UpstreamRequest(self.url(target, stream=request.stream), headers, _encode(body))

    def url(self, target: Target, *, stream: bool) -> str:
        base = target.provider.base_url or endpoint(self.region(target))
        # One path segment, as botocore sends it: ``/`` (in ARNs) is escaped. ``:`` (in
        # ``...-v1:0``) is a legal path character, kept as is so that the HTTP client's URL
        # normalisation (yarl decodes ``%3A``) cannot change the path that SigV4 signed.
        model = quote(target.upstream_model, safe=":")
        operation = "converse-stream" if stream else "converse"
        return f"{base.rstrip('/')}/model/{model}/{operation}"

    def region(self, target: Target) -> str:
        """The signing region: ``base_url``'s when it is a Bedrock host, else the AWS one.

        Raises:
            UpstreamError: no region is configured anywhere.
        """
        region = (
            target.provider.region
            or region_from_url(target.provider.base_url)
            or self.credentials.region()
        )
        if region is None:
            name = target.provider.name
            raise UpstreamError(
                f"{name} has no AWS region: set the provider's region or AWS_REGION, or "
                "base_url to https://bedrock-runtime.<region>.amazonaws.com.",
                provider=name,
            )
        return region

    def parse_response(self, body: bytes, target: Target) -> ChatResponse:
        return parse_converse_response(body, target)

    def stream_parser(self, target: Target) -> BedrockStreamParser:
        return BedrockStreamParser(target)

    def parse_error(
        self, status: int, body: bytes, headers: Mapping[str, str], target: Target
    ) -> UpstreamError:
        name, message = error_name(headers, body)
        return classify(status, name, message, headers, target)

    # -- authentication

    @staticmethod
    def is_authorized(request: UpstreamRequest) -> bool:
        """Whether ``request`` already carries credentials (an API key or a signature)."""
        return any(name.lower() == "authorization" for name in request.headers)

    async def authorize(self, request: UpstreamRequest, target: Target) -> UpstreamRequest:
        """``request`` ready to send: unchanged with an API key, else bearer or SigV4.

        Resolves AWS credentials in a worker thread when none are cached or they near
        expiry; otherwise costs no more than ``sign``.

        Raises:
            UpstreamError: no credentials or no region could be found.
        """
        if self.is_authorized(request) or self.credentials.bearer_token():
            return self.sign(request, target)
        credentials = await self.credentials.get()
        return self.sign(request, target, credentials=credentials)

    def sign(
        self,
        request: UpstreamRequest,
        target: Target,
        *,
        credentials: ReadOnlyCredentials | None = None,
        at: datetime | None = None,
    ) -> UpstreamRequest:
        """``request`` authenticated, synchronously: never does I/O.

        An API key already set is kept; else ``AWS_BEARER_TOKEN_BEDROCK`` becomes a bearer
        token; else the request is SigV4-signed with ``credentials`` (default: those
        ``credentials.get()`` last resolved) at time ``at`` (default: now).

        Raises:
            UpstreamError: SigV4 is needed but no credentials were resolved, or no region.
        """
        if self.is_authorized(request):
            return request
        token = self.credentials.bearer_token()
        if token:
            headers = {**request.headers, "Authorization": f"Bearer {token}"}
            return UpstreamRequest(request.url, headers, request.body, request.method)
        resolved = credentials or self.credentials.current()
        if resolved is None:
            name = target.provider.name
            raise UpstreamError(
                f"{name}: AWS credentials are not resolved; await authorize() before sending.",
                provider=name,
            )
        return sign_sigv4(request, resolved, self.region(target), at=at)


def _encode(body: object) -> bytes:
    return encode_body(body)
