"""Bedrock authentication: SigV4 against the specification, API keys, the credential chain,
and a signed request sent by the gateway's real HTTP client to the verifying emulator."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import botocore.session
import pytest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.exceptions import CredentialRetrievalError
from starlette.applications import Starlette
from starlette.routing import Mount

from aperture.emulator import bedrock as emulator
from aperture.emulator.bedrock_errors import EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY
from aperture.errors import UpstreamError
from aperture.model import ChatRequest, Delta, Finish, Message, StreamEvent, Target, UsageReport
from aperture.providers.bedrock import AwsCredentialSource, BedrockProvider
from aperture.settings import ProviderSettings
from aperture.upstream import Timeouts, UpstreamClient, UpstreamRequest
from aperture.upstream.eventstream import EventStreamDecoder
from tests.servers import serve

pytestmark = pytest.mark.anyio

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
# The key pair of AWS's SigV4 documentation examples.
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SETTINGS = ProviderSettings(
    name="bedrock",
    kind="bedrock",
    base_url="https://bedrock-runtime.eu-central-1.amazonaws.com",
    headers={"x-team": "vision"},
)
CHAT = ChatRequest(model="claude", messages=(Message("user", "Hello"),))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)


class FakeSession(botocore.session.Session):
    """A botocore session whose credential chain answers ``credentials``, counting lookups."""

    def __init__(self, credentials: Credentials | None, region: str = "us-east-1") -> None:
        super().__init__()
        self.set_config_variable("region", region)
        self.fake = credentials
        self.lookups = 0

    def get_credentials(self) -> Credentials | None:
        self.lookups += 1
        return self.fake


class FailingSession(FakeSession):
    def get_credentials(self) -> Credentials | None:
        raise CredentialRetrievalError(provider="sso", error_msg="token expired")


def provider_with(session: botocore.session.Session) -> BedrockProvider:
    return BedrockProvider(AwsCredentialSource(lambda: session))


def reference_authorization(
    request: UpstreamRequest, signed: list[str], secret: str, access: str, region: str
) -> str:
    """SigV4 by the AWS specification, independent of botocore: the canonical request over
    the doubly encoded path, the string to sign, the derived key."""
    url = urlsplit(request.url)
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers["host"] = url.netloc
    stamp = headers["x-amz-date"]
    canonical = "\n".join(
        [
            request.method,
            "/".join(quote(segment, safe="-_.~") for segment in url.path.split("/")),
            "",
            "".join(f"{name}:{headers[name].strip()}\n" for name in signed),
            ";".join(signed),
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    scope = f"{stamp[:8]}/{region}/bedrock/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for part in (stamp[:8], region, "bedrock", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={';'.join(signed)}, "
        f"Signature={signature}"
    )


# ---------------------------------------------------------------------------------------------
# SigV4


@pytest.mark.parametrize("model", [MODEL, ARN])
def test_sigv4_matches_the_specification(model: str) -> None:
    provider = provider_with(FakeSession(None))
    target = Target(SETTINGS, model)
    unsigned = provider.build_request(CHAT, target)
    credentials = ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, None)
    signed = provider.sign(unsigned, target, credentials=credentials, at=AT)
    assert signed.url == unsigned.url
    assert signed.body == unsigned.body
    assert signed.headers["X-Amz-Date"] == "20260102T030405Z"
    names = ["content-type", "host", "x-amz-date", "x-team"]
    expected = reference_authorization(signed, names, SECRET_KEY, ACCESS_KEY, "eu-central-1")
    assert signed.headers["Authorization"] == expected
    assert "X-Amz-Security-Token" not in signed.headers
    assert "Authorization" not in unsigned.headers, "signing returns a new request"


def test_temporary_credentials_sign_their_session_token() -> None:
    provider = provider_with(FakeSession(None))
    target = Target(SETTINGS, MODEL)
    credentials = ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, "session-token")
    signed = provider.sign(
        provider.build_request(CHAT, target), target, credentials=credentials, at=AT
    )
    assert signed.headers["X-Amz-Security-Token"] == "session-token"
    names = ["content-type", "host", "x-amz-date", "x-amz-security-token", "x-team"]
    expected = reference_authorization(signed, names, SECRET_KEY, ACCESS_KEY, "eu-central-1")
    assert signed.headers["Authorization"] == expected


def test_a_naive_time_is_utc_and_no_time_means_now() -> None:
    provider = provider_with(FakeSession(None))
    target = Target(SETTINGS, MODEL)
    unsigned = provider.build_request(CHAT, target)
    credentials = ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, None)
    naive = provider.sign(unsigned, target, credentials=credentials, at=AT.replace(tzinfo=None))
    aware = provider.sign(unsigned, target, credentials=credentials, at=AT)
    assert naive.headers == aware.headers
    now = provider.sign(unsigned, target, credentials=credentials)
    stamp = datetime.strptime(now.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs(stamp - datetime.now(UTC)) < timedelta(minutes=1)


def test_the_signing_region_falls_back_to_the_aws_region_for_other_hosts() -> None:
    provider = provider_with(FakeSession(None, region="ap-south-1"))
    settings = ProviderSettings(name="b", kind="bedrock", base_url="http://127.0.0.1:9/bedrock")
    target = Target(settings, MODEL)
    credentials = ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, None)
    signed = provider.sign(
        provider.build_request(CHAT, target), target, credentials=credentials, at=AT
    )
    assert "/20260102/ap-south-1/bedrock/aws4_request," in signed.headers["Authorization"]


def test_signing_needs_resolved_credentials() -> None:
    provider = provider_with(FakeSession(None))
    target = Target(SETTINGS, MODEL)
    with pytest.raises(UpstreamError, match="await authorize"):
        provider.sign(provider.build_request(CHAT, target), target)


# ---------------------------------------------------------------------------------------------
# API keys


def test_an_api_key_request_is_left_as_built() -> None:
    provider = provider_with(FakeSession(None))
    target = Target(ProviderSettings(name="b", kind="bedrock", api_key="ABSK-key"), MODEL)
    built = provider.build_request(CHAT, target)
    assert provider.sign(built, target) is built


async def test_the_bedrock_bearer_token_variable_replaces_sigv4(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSK-from-env")
    session = FakeSession(None)
    provider = provider_with(session)
    target = Target(SETTINGS, MODEL)
    authorized = await provider.authorize(provider.build_request(CHAT, target), target)
    assert authorized.headers["Authorization"] == "Bearer ABSK-from-env"
    assert "X-Amz-Date" not in authorized.headers
    assert session.lookups == 0, "no credential chain lookup with an API key"


# ---------------------------------------------------------------------------------------------
# The credential chain


async def test_authorize_resolves_the_chain_once_for_concurrent_requests() -> None:
    session = FakeSession(Credentials(ACCESS_KEY, SECRET_KEY))
    provider = provider_with(session)
    target = Target(SETTINGS, MODEL)
    unsigned = provider.build_request(CHAT, target)
    results: list[UpstreamRequest] = []

    async def one() -> None:
        results.append(await provider.authorize(unsigned, target))

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(one)
    assert session.lookups == 1
    assert all(
        r.headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
        for r in results
    )
    assert provider.credentials.current() == ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, None)
    await provider.authorize(unsigned, target)
    assert session.lookups == 1, "cached"


async def test_refreshable_credentials_refresh_before_they_expire() -> None:
    refreshes: list[int] = []

    def refresh() -> dict[str, Any]:
        refreshes.append(1)
        expiry = datetime.now(UTC) + timedelta(hours=1)
        return {
            "access_key": f"ASIA{len(refreshes)}",
            "secret_key": "s",
            "token": "t",
            "expiry_time": expiry.isoformat(),
        }

    # Expiring in 5 minutes: inside botocore's 15-minute advisory window, so refreshed first.
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    metadata = {"access_key": "ASIA0", "secret_key": "s", "token": "t", "expiry_time": soon}
    credentials = RefreshableCredentials.create_from_metadata(metadata, refresh, "test")
    source = AwsCredentialSource(lambda: FakeSession(credentials))
    assert source.current() is None
    assert (await source.get()).access_key == "ASIA1"
    assert len(refreshes) == 1
    assert source.current() is not None
    assert (await source.get()).access_key == "ASIA1"
    assert len(refreshes) == 1, "fresh credentials are served from the cache"


@pytest.mark.parametrize(
    ("session", "message"),
    [
        (FakeSession(None), "No AWS credentials were found"),
        (FailingSession(None), "could not be resolved: CredentialRetrievalError"),
    ],
)
async def test_missing_or_failing_credentials_are_upstream_errors(
    session: FakeSession, message: str
) -> None:
    provider = provider_with(session)
    target = Target(SETTINGS, MODEL)
    with pytest.raises(UpstreamError, match=message) as caught:
        await provider.authorize(provider.build_request(CHAT, target), target)
    assert "token expired" not in caught.value.message


async def test_warm_resolves_region_and_credentials_ahead() -> None:
    session = FakeSession(Credentials(ACCESS_KEY, SECRET_KEY), region="sa-east-1")
    source = AwsCredentialSource(lambda: session)
    await source.warm()
    assert source.region() == "sa-east-1"
    assert source.current() is not None
    assert session.lookups == 1


# ---------------------------------------------------------------------------------------------
# Through the gateway's HTTP client to the emulator, which verifies the signature


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    app = Starlette(routes=[Mount("/bedrock", routes=emulator.routes())])
    with serve(app) as url:
        yield url


def emulator_target(url: str, model: str) -> Target:
    settings = ProviderSettings(name="emu", kind="bedrock", base_url=f"{url}/bedrock")
    return Target(settings, model)


@pytest.mark.parametrize("model", [MODEL, ARN])
async def test_a_signed_request_passes_the_emulators_signature_check(
    emulator_url: str, model: str
) -> None:
    provider = provider_with(FakeSession(Credentials(EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY)))
    target = emulator_target(emulator_url, model)
    upstream = await provider.authorize(provider.build_request(CHAT, target), target)
    client = UpstreamClient.create()
    try:
        response = await client.send(upstream, Timeouts(5, 10), provider="emu")
        tampered = UpstreamRequest(upstream.url, upstream.headers, upstream.body + b" ")
        refused = await client.send(tampered, Timeouts(5, 10), provider="emu")
    finally:
        await client.close()
    assert response.status == 200, response.body
    answer = provider.parse_response(response.body, target)
    assert answer.choices[0].content == 'Saw no images. Asked: "Hello"'
    assert refused.status == 403
    error = provider.parse_error(refused.status, refused.body, refused.headers, target)
    assert type(error) is UpstreamError
    assert "signature" not in error.message.lower()


async def test_a_signed_stream_decodes_to_canonical_events(emulator_url: str) -> None:
    provider = provider_with(FakeSession(Credentials(EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY)))
    target = emulator_target(emulator_url, ARN)
    chat = ChatRequest(model="claude", messages=(Message("user", "Hi there"),), stream=True)
    upstream = await provider.authorize(provider.build_request(chat, target), target)
    client = UpstreamClient.create()
    events: list[StreamEvent] = []
    parser = provider.stream_parser(target)
    decoder = EventStreamDecoder()
    try:
        stream = await client.open_stream(upstream, Timeouts(5, 10), provider="emu")
        assert stream.status == 200
        assert stream.headers["content-type"] == "application/vnd.amazon.eventstream"
        async for chunk in stream.chunks():
            for frame in decoder.feed(chunk):
                events += parser.feed(frame)
        await stream.aclose()
    finally:
        await client.close()
    assert parser.done
    assert decoder.buffered == 0
    text = "".join(e.content or "" for e in events if isinstance(e, Delta))
    assert text == 'Saw no images. Asked: "Hi there"'
    assert Finish(0, "stop") in events
    assert isinstance(events[-1], UsageReport)
