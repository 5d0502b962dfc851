"""AWS credentials, region and request signing for Bedrock, with botocore as the reference.

Signing cannot happen in a pure ``build_request``: credentials may need I/O to resolve
(IMDS, SSO, assume-role) and SigV4 signs the current time. So:

- ``AwsCredentialSource`` resolves botocore's standard chain (environment, shared config and
  credentials files, SSO, container and instance metadata...) in a worker thread, caches the
  frozen credentials and resolves again before they expire;
- ``sign_sigv4`` is synchronous and pure given resolved credentials and a time.

Bedrock API keys (``Authorization: Bearer``) skip all of that: the provider's ``api_key``, or
``AWS_BEARER_TOKEN_BEDROCK`` in the environment, as botocore itself honours it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import anyio
import botocore.session
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.exceptions import BotoCoreError
from botocore.utils import get_token_from_environment

from aperture.errors import UpstreamError
from aperture.upstream import UpstreamRequest

__all__ = [
    "SIGNING_NAME",
    "AwsCredentialSource",
    "region_from_url",
    "sign_sigv4",
]

SIGNING_NAME = "bedrock"
"""The SigV4 service name of bedrock-runtime (``signingName`` in its service model)."""

_RUNTIME_HOST = re.compile(
    r"bedrock-runtime(?:-fips)?\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?"
)


def region_from_url(url: str | None) -> str | None:
    """The region of a ``bedrock-runtime.<region>.amazonaws.com`` URL; None for other hosts."""
    if not url:
        return None
    match = _RUNTIME_HOST.fullmatch(urlsplit(url).hostname or "")
    return match.group(1) if match else None


class AwsCredentialSource:
    """The process's AWS identity: credentials, the configured region and a Bedrock API key.

    One per provider adapter, shared by every request. ``get()`` is safe to await from any
    event loop: resolution runs in a worker thread under a thread lock, so concurrent callers
    wait for one resolution instead of starting several.
    """

    def __init__(
        self,
        session_factory: Callable[[], botocore.session.Session] = botocore.session.get_session,
    ) -> None:
        self._session_factory = session_factory
        self._session: botocore.session.Session | None = None
        self._lock = threading.Lock()
        self._source: Credentials | None = None
        self._frozen: ReadOnlyCredentials | None = None
        self._region: str | None = None
        self._region_known = False

    # -- credentials

    async def get(self) -> ReadOnlyCredentials:
        """Credentials fresh enough to sign with now, resolving them first if needed.

        Raises:
            UpstreamError: the chain found no credentials, or resolving them failed.
        """
        current = self.current()
        if current is not None:
            return current
        return await anyio.to_thread.run_sync(self._resolve)

    def current(self) -> ReadOnlyCredentials | None:
        """The cached credentials if they need no refresh yet; never does I/O."""
        frozen, source = self._frozen, self._source
        if frozen is None or source is None:
            return None
        if isinstance(source, RefreshableCredentials) and source.refresh_needed():
            return None
        return frozen

    def _resolve(self) -> ReadOnlyCredentials:
        with self._lock:
            current = self.current()
            if current is not None:
                return current  # another caller resolved while this one waited
            try:
                source = self._source or self._botocore().get_credentials()
                # Refreshes (I/O) when expiry is near: botocore's advisory window, 15 minutes.
                frozen = source.get_frozen_credentials() if source is not None else None
            except BotoCoreError as exc:
                raise UpstreamError(
                    f"AWS credentials could not be resolved: {type(exc).__name__}."
                ) from exc
            if source is None or frozen is None or not frozen.access_key:
                raise UpstreamError(
                    "No AWS credentials were found for Bedrock: set an api_key (a Bedrock API "
                    "key), AWS_BEARER_TOKEN_BEDROCK, or configure the standard AWS credential "
                    "chain (environment, shared files, SSO, instance role)."
                )
            self._source, self._frozen = source, frozen
            return frozen

    # -- region and API key

    def region(self) -> str | None:
        """The configured region (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's
        ``region``), looked up once: later calls do no I/O."""
        if not self._region_known:
            with self._lock:
                if not self._region_known:
                    self._region = self._lookup_region()
                    self._region_known = True
        return self._region

    async def warm(self) -> None:
        """Resolve the region and credentials off the event loop (e.g. at startup)."""
        await anyio.to_thread.run_sync(self.region)
        if self.bearer_token() is None:
            await self.get()

    def bearer_token(self) -> str | None:
        """A Bedrock API key from ``AWS_BEARER_TOKEN_BEDROCK``, which botocore prefers to
        SigV4 when set."""
        return get_token_from_environment(SIGNING_NAME) or None

    def _lookup_region(self) -> str | None:
        # botocore's own lookup reads AWS_DEFAULT_REGION and the profile, not AWS_REGION,
        # which the newer SDKs and most AWS tooling honour first.
        region = os.environ.get("AWS_REGION") or self._botocore().get_config_variable("region")
        return str(region) if region else None

    def _botocore(self) -> botocore.session.Session:
        if self._session is None:
            self._session = self._session_factory()
        return self._session


class _SigV4At(SigV4Auth):
    """SigV4 at a given time: botocore stamps ``request.context['timestamp']`` with its own
    clock at the start of ``add_auth`` and reads it everywhere after, so this re-stamps it
    (and the ``X-Amz-Date`` header derived from it) before the canonical request is built."""

    def __init__(self, credentials: ReadOnlyCredentials, region: str, at: datetime) -> None:
        super().__init__(credentials, SIGNING_NAME, region)
        utc = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        self._stamp = utc.strftime(SIGV4_TIMESTAMP)

    def canonical_request(self, request: AWSRequest) -> str:
        request.context["timestamp"] = self._stamp
        del request.headers["X-Amz-Date"]
        request.headers["X-Amz-Date"] = self._stamp
        return super().canonical_request(request)


def sign_sigv4(
    request: UpstreamRequest,
    credentials: ReadOnlyCredentials,
    region: str,
    *,
    at: datetime | None = None,
) -> UpstreamRequest:
    """``request`` with SigV4 headers (``Authorization``, ``X-Amz-Date`` and, for temporary
    credentials, ``X-Amz-Security-Token``) over its method, URL, headers and body.

    The URL is signed exactly as given: the HTTP client must send that path byte for byte.
    """
    aws = AWSRequest(
        method=request.method, url=request.url, headers=dict(request.headers), data=request.body
    )
    signer = (
        SigV4Auth(credentials, SIGNING_NAME, region)
        if at is None
        else _SigV4At(credentials, region, at)
    )
    signer.add_auth(aws)
    return UpstreamRequest(request.url, dict(aws.headers.items()), request.body, request.method)
