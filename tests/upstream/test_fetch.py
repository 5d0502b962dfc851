"""The safe image fetcher end to end, against scripted origins on 127.0.0.1.

Every origin listens on loopback, which is private, so the tests map made-up names
(``images.test``) to 127.0.0.1 with a fake resolver and allow them explicitly; the tests
without that allowance show the same fetch refused. Nothing here connects beyond loopback.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import msgspec
import pytest
from yarl import URL

from aperture.errors import (
    GatewayError,
    ImageFetchFailedError,
    ImageTooLargeError,
    ImageUrlNotAllowedError,
)
from aperture.upstream._fetch_url import Refusal, first_target, next_target
from aperture.upstream.fetch import FetchedImage, FetchPolicy, ImageFetcher
from tests.sample_images import png

pytestmark = pytest.mark.anyio

PNG = png()
PARAM = "messages[0].content[1].image_url.url"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- a scripted origin -------------------------------------------------------------------

Handler = Callable[[asyncio.StreamWriter], Awaitable[None]]


class Seen(NamedTuple):
    target: str
    headers: dict[str, str]


class Origin:
    """An HTTP/1.1 server on 127.0.0.1 whose paths answer with exactly the bytes we script."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Handler] = {}
        self.seen: list[Seen] = []
        self.requested = asyncio.Event()
        self.port = 0
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    def url(self, path: str, host: str = "images.test", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def __aenter__(self) -> Origin:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self._tls is not None:
                # Upgraded here rather than by the server, so a refused handshake ends in
                # this handler instead of the loop's exception handler.
                await writer.start_tls(self._tls)
            head = await reader.readuntil(b"\r\n\r\n")
            line, *fields = head.decode("latin-1").rstrip("\r\n").split("\r\n")
            headers = {}
            for field in fields:
                name, _, value = field.partition(":")
                headers[name.strip().lower()] = value.strip()
            target = line.split(" ")[1]
            self.seen.append(Seen(target, headers))
            self.requested.set()
            handler = self.routes.get(target.partition("?")[0], reply(404, b"no such path"))
            await handler(writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the fetcher hung up first, as it should when it refuses
        except asyncio.CancelledError:
            pass  # shutting down; 3.11 streams log a callback task that ends cancelled
        finally:
            self._tasks.discard(task)
            writer.close()


def _head(status: int, headers: Sequence[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} Scripted", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode("latin-1")


def reply(
    status: int = 200,
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
    *,
    length: int | Literal["auto"] | None = "auto",
) -> Handler:
    """A whole response; ``length`` None omits Content-Length (the body ends at close)."""
    declared = (
        []
        if length is None
        else [("Content-Length", str(len(body) if length == "auto" else length))]
    )

    async def handler(writer: asyncio.StreamWriter) -> None:
        writer.write(_head(status, [*headers, *declared]) + body)
        await writer.drain()

    return handler


def image(body: bytes = PNG, *headers: tuple[str, str]) -> Handler:
    return reply(200, body, [("Content-Type", "image/png"), *headers])


def redirect(location: str, status: int = 302, *headers: tuple[str, str]) -> Handler:
    return reply(status, b"", [("Location", location), *headers])


def chunked(body: bytes, size: int) -> Handler:
    async def handler(writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, [("Transfer-Encoding", "chunked")]))
        for start in range(0, len(body), size):
            piece = body[start : start + size]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    return handler


def drip(every_s: float) -> Handler:
    """A PNG signature, then one byte per tick, forever (the body ends at close)."""

    async def handler(writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, [("Content-Type", "image/png")]) + PNG[:8])
        while True:
            await writer.drain()
            await asyncio.sleep(every_s)
            writer.write(b"\0")

    return handler


def declared_then_stall(length: int) -> Handler:
    async def handler(writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, [("Content-Length", str(length))]) + PNG[:8])
        await writer.drain()
        await asyncio.sleep(3600)

    return handler


def delayed(seconds: float, then: Handler) -> Handler:
    async def handler(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(seconds)
        await then(writer)

    return handler


async def stall(writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


class FakeResolver:
    """Names to addresses from a table, counting every question."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = table or {
            name: ["127.0.0.1"] for name in ("images.test", "cdn.test", "evil.test")
        }
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown name")
        return list(self.table[host])


def allowed(*ports: int, **overrides: object) -> FetchPolicy:
    """A policy admitting the loopback test names on ``ports`` (written into each entry, as an
    operator would for an internal server off 80/443; none: the standard ports only), with a
    deadline generous enough for CI."""
    names = ("images.test", "cdn.test")
    entries = tuple(f"{name}:{port}" for name in names for port in ports) if ports else names
    base = FetchPolicy(allow_private_hosts=entries, timeout_s=10.0)
    return msgspec.structs.replace(base, **overrides)


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    async with Origin() as server:
        yield server


# --- the happy path ----------------------------------------------------------------------


async def test_fetches_an_image_from_an_allowed_host(origin: Origin) -> None:
    origin.routes["/cat.png"] = image()
    fetcher = ImageFetcher(allowed(origin.port), resolver=FakeResolver())
    result = await fetcher.fetch(origin.url("/cat.png?size=large"))
    assert result == FetchedImage(PNG, "image/png", host="images.test", url_host="images.test")
    [seen] = origin.seen
    assert seen.target == "/cat.png?size=large"
    assert seen.headers["host"] == f"images.test:{origin.port}"
    assert seen.headers["user-agent"] == "Aperture-ImageFetcher/1"
    assert seen.headers["accept-encoding"] == "identity"
    assert "cookie" not in seen.headers
    assert "authorization" not in seen.headers


def test_policy_defaults() -> None:
    policy = FetchPolicy()
    assert (policy.timeout_s, policy.connect_timeout_s, policy.max_redirects) == (10.0, 3.0, 3)
    assert (policy.max_bytes, policy.allow_private_hosts) == (20_000_000, ())
    assert (policy.allow_http, policy.allowed_ports) == (True, (80, 443))


async def test_connects_to_the_checked_address_without_asking_dns_again(origin: Origin) -> None:
    class Rebinding(FakeResolver):
        async def resolve(self, host: str, port: int) -> list[str]:
            answer = await super().resolve(host, port)
            self.table[host] = ["10.0.0.1"]  # any later answer would point elsewhere
            return answer

    origin.routes["/cat.png"] = image()
    resolver = Rebinding()
    result = await ImageFetcher(allowed(origin.port), resolver=resolver).fetch(
        origin.url("/cat.png")
    )
    assert result.data == PNG
    assert resolver.calls == ["images.test"]


async def test_tls_keeps_the_hostname_for_sni_and_verifies_the_certificate(
    tmp_path: Path,
) -> None:
    # A self-signed certificate for images.test: SNI must carry the name, and since no CA
    # vouches for it, verification (which stays on) must refuse it.
    (tmp_path / "cert.pem").write_text(CERT)
    (tmp_path / "key.pem").write_text(KEY)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server_names: list[str | None] = []

    def record(_sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        server_names.append(name)

    context.sni_callback = record
    async with Origin(tls=context) as tls_origin:
        tls_origin.routes["/cat.png"] = image()
        fetcher = ImageFetcher(allowed(tls_origin.port), resolver=FakeResolver())
        with pytest.raises(ImageFetchFailedError, match="TLS") as caught:
            await fetcher.fetch(tls_origin.url("/cat.png", scheme="https"), param=PARAM)
    assert server_names == ["images.test"]
    assert caught.value.param == PARAM
    assert tls_origin.seen == []


async def test_the_system_resolver_is_used_by_default(origin: Origin) -> None:
    origin.routes["/cat.png"] = image()
    refused = ImageFetcher(FetchPolicy(allowed_ports=(origin.port,)))
    with pytest.raises(ImageUrlNotAllowedError, match="private"):
        await refused.fetch(origin.url("/cat.png", host="localhost"))
    assert origin.seen == []
    allowing = ImageFetcher(FetchPolicy(allow_private_hosts=(f"localhost:{origin.port}",)))
    result = await allowing.fetch(origin.url("/cat.png", host="localhost"))
    assert (result.data, result.host) == (PNG, "localhost")


async def test_environment_proxies_are_ignored(
    origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    origin.routes["/cat.png"] = image()
    result = await ImageFetcher(allowed(origin.port), resolver=FakeResolver()).fetch(
        origin.url("/cat.png")
    )
    assert result.data == PNG
    assert origin.seen[0].target == "/cat.png"  # origin-form: no proxy in between


async def test_cookies_are_never_stored_or_sent(origin: Origin) -> None:
    origin.routes["/login"] = redirect("/cat.png", 302, ("Set-Cookie", "session=abc; Path=/"))
    origin.routes["/cat.png"] = image(PNG, ("Set-Cookie", "tracker=1; Path=/"))
    origin.routes["/dog.png"] = image()
    fetcher = ImageFetcher(allowed(origin.port), resolver=FakeResolver())
    await fetcher.fetch(origin.url("/login"))
    await fetcher.fetch(origin.url("/dog.png"))
    assert [seen.target for seen in origin.seen] == ["/login", "/cat.png", "/dog.png"]
    assert all("cookie" not in seen.headers for seen in origin.seen)


# --- addresses, schemes, ports -----------------------------------------------------------


async def test_without_the_allowance_the_same_fetch_is_refused(origin: Origin) -> None:
    origin.routes["/cat.png"] = image()
    resolver = FakeResolver()
    fetcher = ImageFetcher(FetchPolicy(allowed_ports=(origin.port,)), resolver=resolver)
    with pytest.raises(ImageUrlNotAllowedError, match="private or reserved") as caught:
        await fetcher.fetch(origin.url("/cat.png"), param=PARAM)
    assert caught.value.param == PARAM
    assert resolver.calls == ["images.test"]
    assert origin.seen == []


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.1"],
        ["::ffff:127.0.0.1"],
        ["127.0.0.1", "8.8.8.8"],  # one private answer spoils the lot
        ["169.254.169.254"],
        ["100.64.0.1"],
        ["64:ff9b::7f00:1"],
        ["2002:7f00:1::"],
        ["::127.0.0.1"],
        ["fd00::1"],
        ["::1"],
    ],
)
async def test_a_public_looking_name_that_resolves_privately_is_refused_before_connecting(
    origin: Origin, addresses: list[str]
) -> None:
    origin.routes["/cat.png"] = image()
    resolver = FakeResolver({"photos.example": addresses})
    fetcher = ImageFetcher(FetchPolicy(allowed_ports=(origin.port,)), resolver=resolver)
    with pytest.raises(ImageUrlNotAllowedError):
        await fetcher.fetch(origin.url("/cat.png", host="photos.example"))
    assert origin.seen == []


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "2130706433", "0x7f.1", "127.1", "0177.0.0.1", "0x7f000001", "127.0.0.1.",
     "[::ffff:127.0.0.1]", "[::1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]"],
)  # fmt: skip
async def test_literal_addresses_are_judged_in_every_spelling_without_dns(
    origin: Origin, host: str
) -> None:
    origin.routes["/cat.png"] = image()
    resolver = FakeResolver()
    fetcher = ImageFetcher(FetchPolicy(allowed_ports=(origin.port,)), resolver=resolver)
    with pytest.raises(ImageUrlNotAllowedError, match="private or reserved"):
        await fetcher.fetch(origin.url("/cat.png", host=host))
    assert resolver.calls == []
    assert origin.seen == []


async def test_an_allowed_network_admits_a_literal_at_its_canonical_address(origin: Origin) -> None:
    origin.routes["/cat.png"] = image()
    fetcher = ImageFetcher(
        FetchPolicy(allow_private_hosts=(f"127.0.0.0/8:{origin.port}",)), resolver=FakeResolver()
    )
    result = await fetcher.fetch(origin.url("/cat.png", host="0x7f.1"))
    assert (result.host, result.url_host) == ("127.0.0.1", "127.0.0.1")
    assert origin.seen[0].headers["host"] == f"127.0.0.1:{origin.port}"


async def test_an_allowed_network_admits_a_name_that_resolves_into_it(origin: Origin) -> None:
    origin.routes["/cat.png"] = image()
    fetcher = ImageFetcher(
        FetchPolicy(allow_private_hosts=(f"127.0.0.0/8:{origin.port}",)), resolver=FakeResolver()
    )
    result = await fetcher.fetch(origin.url("/cat.png", host="evil.test"))
    assert result.host == "evil.test"


async def test_ports_outside_the_list_are_refused_before_resolving() -> None:
    resolver = FakeResolver({"photos.example": ["8.8.8.8"]})
    fetcher = ImageFetcher(FetchPolicy(), resolver=resolver)
    with pytest.raises(ImageUrlNotAllowedError, match="port 8080"):
        await fetcher.fetch("https://photos.example:8080/cat.png")
    with pytest.raises(ImageUrlNotAllowedError, match="port 0"):
        await fetcher.fetch("https://photos.example:0/cat.png")
    assert resolver.calls == []
    # A network open on that port does not open it for addresses outside the network.
    networks = ImageFetcher(
        FetchPolicy(allow_private_hosts=("10.0.0.0/8:8080",)), resolver=resolver
    )
    with pytest.raises(ImageUrlNotAllowedError, match="port 8080"):
        await networks.fetch("https://photos.example:8080/cat.png")
    assert resolver.calls == ["photos.example"]


# --- allow_private_hosts opens no more than it names -------------------------------------


async def test_an_allowed_name_on_a_port_not_written_is_refused(origin: Origin) -> None:
    origin.routes["/cat.png"] = image()
    resolver = FakeResolver()
    bare = ImageFetcher(allowed(), resolver=resolver)  # the names, on 80/443 only
    with pytest.raises(ImageUrlNotAllowedError, match=f"port {origin.port}") as caught:
        await bare.fetch(origin.url("/cat.png"), param=PARAM)
    assert (caught.value.code, caught.value.param) == ("image_url_not_allowed", PARAM)
    assert origin.seen == []
    result = await ImageFetcher(allowed(origin.port), resolver=resolver).fetch(
        origin.url("/cat.png")
    )
    assert result.data == PNG


async def test_a_name_does_not_open_its_address_on_other_ports_or_names(origin: Origin) -> None:
    # images.test and evil.test both resolve to 127.0.0.1; only images.test on origin's port
    # is listed, so every other way to the same address stays shut.
    origin.routes["/cat.png"] = image()
    async with Origin() as other:
        other.routes["/cat.png"] = image()
        fetcher = ImageFetcher(
            # The network gets the port past the first check, so the address is judged too.
            FetchPolicy(
                allow_private_hosts=(f"images.test:{origin.port}", f"10.0.0.0/8:{origin.port}")
            ),
            resolver=FakeResolver(),
        )
        assert (await fetcher.fetch(origin.url("/cat.png"))).data == PNG
        for url, reason in [
            (other.url("/cat.png"), f"port {other.port}"),
            (origin.url("/cat.png", host="127.0.0.1"), "private or reserved"),
            (other.url("/cat.png", host="127.0.0.1"), f"port {other.port}"),
            (origin.url("/cat.png", host="evil.test"), "private or reserved"),
        ]:
            with pytest.raises(ImageUrlNotAllowedError, match=reason):
                await fetcher.fetch(url)
    assert len(origin.seen) == 1
    assert other.seen == []


async def test_a_network_without_a_port_allows_only_the_standard_ports(origin: Origin) -> None:
    origin.routes["/cat.png"] = image()
    async with Origin() as other:
        other.routes["/cat.png"] = image()
        bare = ImageFetcher(FetchPolicy(allow_private_hosts=("127.0.0.0/8",)))
        with pytest.raises(ImageUrlNotAllowedError, match=f"port {origin.port}"):
            await bare.fetch(origin.url("/cat.png", host="127.0.0.1"))
        written = ImageFetcher(FetchPolicy(allow_private_hosts=(f"127.0.0.0/8:{origin.port}",)))
        assert (await written.fetch(origin.url("/cat.png", host="127.0.0.1"))).data == PNG
        with pytest.raises(ImageUrlNotAllowedError, match=f"port {other.port}"):
            await written.fetch(other.url("/cat.png", host="127.0.0.1"))
    assert len(origin.seen) == 1
    assert other.seen == []


@pytest.mark.parametrize("host", ["images.test", "cdn.test", "127.0.0.1"])
async def test_a_redirect_to_a_port_not_allowed_is_refused(origin: Origin, host: str) -> None:
    async with Origin() as other:
        other.routes["/cat.png"] = image()
        origin.routes["/hop"] = redirect(other.url("/cat.png", host=host))
        origin.routes["/same-port"] = redirect(origin.url("/cat.png", host="cdn.test"))
        origin.routes["/cat.png"] = image()
        fetcher = ImageFetcher(allowed(origin.port), resolver=FakeResolver())
        with pytest.raises(ImageUrlNotAllowedError, match=f"port {other.port}|private"):
            await fetcher.fetch(origin.url("/hop"), param=PARAM)
        assert (await fetcher.fetch(origin.url("/same-port"))).host == "cdn.test"
    assert other.seen == []
    assert [seen.target for seen in origin.seen] == ["/hop", "/same-port", "/cat.png"]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://images.test/cat.png",
        "file:///etc/passwd",
        "gopher://images.test:70/_x",
        "data:image/png;base64,iVBORw0KGgo=",
        "javascript:alert(1)",
        "ws://images.test/",
        "//images.test/cat.png",
        "images.test/cat.png",
    ],
)
async def test_only_http_and_https_are_fetched(url: str) -> None:
    resolver = FakeResolver()
    with pytest.raises(ImageUrlNotAllowedError) as caught:
        await ImageFetcher(allowed(), resolver=resolver).fetch(url, param=PARAM)
    assert caught.value.param == PARAM
    assert resolver.calls == []


async def test_http_is_refused_when_the_policy_says_https_only() -> None:
    resolver = FakeResolver()
    fetcher = ImageFetcher(allowed(allow_http=False), resolver=resolver)
    with pytest.raises(ImageUrlNotAllowedError, match="only https URLs"):
        await fetcher.fetch("http://images.test/cat.png")
    assert resolver.calls == []


@pytest.mark.parametrize(
    "url",
    [
        "http://user:hunter2@images.test/cat.png",
        "http://user@images.test/cat.png",
        "http://:hunter2@images.test/cat.png",
        "http://:@images.test/cat.png",
        "http://@images.test/cat.png",
        "http://images.test@127.0.0.1/cat.png",
    ],
)
async def test_credentials_in_the_url_are_refused(url: str) -> None:
    with pytest.raises(ImageUrlNotAllowedError, match="credentials") as caught:
        await ImageFetcher(allowed(), resolver=FakeResolver()).fetch(url)
    assert "hunter2" not in caught.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http:///cat.png",
        "http://images.test:99999/cat.png",
        "http://ima ges.test/cat.png",
        "http://images.test/\tcat.png",
        "http://images.test/cat.png\n",
        "http://evil.example\\@127.0.0.1/",
        "http://images.test%2f/cat.png",
        "http://[::1/cat.png",
        "http://images.test/" + "a" * 9000,
    ],
)
async def test_malformed_urls_are_refused(url: str) -> None:
    resolver = FakeResolver()
    with pytest.raises(ImageUrlNotAllowedError):
        await ImageFetcher(allowed(), resolver=resolver).fetch(url)
    assert resolver.calls == []


# --- redirects ---------------------------------------------------------------------------


async def test_redirects_are_followed_and_every_hop_is_checked(origin: Origin) -> None:
    origin.routes["/start"] = redirect(origin.url("/next", host="cdn.test"), 301)
    origin.routes["/next"] = redirect("/final.png?v=2", 307)
    origin.routes["/final.png"] = image()
    resolver = FakeResolver()
    result = await ImageFetcher(allowed(origin.port), resolver=resolver).fetch(origin.url("/start"))
    assert result == FetchedImage(PNG, "image/png", host="cdn.test", url_host="images.test")
    assert resolver.calls == ["images.test", "cdn.test", "cdn.test"]
    assert [seen.target for seen in origin.seen] == ["/start", "/next", "/final.png?v=2"]
    assert origin.seen[2].headers["host"] == f"cdn.test:{origin.port}"


@pytest.mark.parametrize(
    "location",
    [
        "http://evil.test:{port}/cat.png",
        "http://127.0.0.1:{port}/cat.png",
        "http://2130706433:{port}/cat.png",
        "http://[::ffff:127.0.0.1]:{port}/cat.png",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "ftp://cdn.test/cat.png",
        "http://user:pw@cdn.test:{port}/cat.png",
    ],
)
async def test_a_redirect_somewhere_not_allowed_is_refused(origin: Origin, location: str) -> None:
    origin.routes["/start"] = redirect(location.format(port=origin.port))
    origin.routes["/cat.png"] = image()
    fetcher = ImageFetcher(
        allowed(origin.port, allowed_ports=(80, 443, origin.port)), resolver=FakeResolver()
    )
    with pytest.raises(ImageUrlNotAllowedError) as caught:
        await fetcher.fetch(origin.url("/start"), param=PARAM)
    assert caught.value.param == PARAM
    assert [seen.target for seen in origin.seen] == ["/start"]


def test_a_redirect_from_https_to_http_is_refused() -> None:
    # Checked on the hop rule itself: no origin here has a certificate the fetcher trusts.
    first = first_target("https://images.test/a.png", allow_http=True)
    following = next_target(first, "//cdn.test/b.png", allow_http=True)
    assert following.url == URL("https://cdn.test/b.png")
    with pytest.raises(Refusal, match="from https to http") as caught:
        next_target(first, "http://cdn.test/b.png", allow_http=True)
    assert caught.value.kind is ImageUrlNotAllowedError


@pytest.mark.parametrize("max_redirects", [0, 1, 3])
async def test_too_many_redirects_fail(origin: Origin, max_redirects: int) -> None:
    origin.routes["/loop"] = redirect("/loop")
    fetcher = ImageFetcher(
        allowed(origin.port, max_redirects=max_redirects), resolver=FakeResolver()
    )
    with pytest.raises(ImageFetchFailedError, match="too many redirects"):
        await fetcher.fetch(origin.url("/loop"))
    assert len(origin.seen) == max_redirects + 1


async def test_a_redirect_without_a_location_fails(origin: Origin) -> None:
    origin.routes["/nowhere"] = reply(302)
    with pytest.raises(ImageFetchFailedError, match="without a location"):
        await ImageFetcher(allowed(origin.port), resolver=FakeResolver()).fetch(
            origin.url("/nowhere")
        )


# --- time --------------------------------------------------------------------------------


async def test_a_slow_drip_hits_the_total_deadline(origin: Origin) -> None:
    origin.routes["/drip.png"] = drip(0.02)
    fetcher = ImageFetcher(allowed(origin.port, timeout_s=0.5), resolver=FakeResolver())
    started = time.monotonic()
    with pytest.raises(ImageFetchFailedError, match="timeout") as caught:
        await fetcher.fetch(origin.url("/drip.png"), param=PARAM)
    assert time.monotonic() - started < 5
    assert caught.value.param == PARAM


async def test_a_stalled_response_hits_the_total_deadline(origin: Origin) -> None:
    origin.routes["/stall.png"] = stall
    fetcher = ImageFetcher(allowed(origin.port, timeout_s=0.3), resolver=FakeResolver())
    with pytest.raises(ImageFetchFailedError, match="timeout"):
        await fetcher.fetch(origin.url("/stall.png"))


async def test_the_deadline_covers_the_whole_redirect_chain(origin: Origin) -> None:
    # Each hop alone is well inside the deadline; together they are not.
    for hop in range(4):
        origin.routes[f"/hop{hop}"] = delayed(0.25, redirect(f"/hop{hop + 1}"))
    origin.routes["/hop4"] = image()
    fetcher = ImageFetcher(
        allowed(origin.port, timeout_s=0.6, max_redirects=5), resolver=FakeResolver()
    )
    with pytest.raises(ImageFetchFailedError, match="timeout"):
        await fetcher.fetch(origin.url("/hop0"))
    assert len(origin.seen) < 4


async def test_a_connection_that_never_completes_hits_the_connect_timeout(origin: Origin) -> None:
    # The origin speaks no TLS, so the handshake hangs; the connect timeout must end it
    # long before the total deadline.
    fetcher = ImageFetcher(
        allowed(origin.port, connect_timeout_s=0.3, timeout_s=30), resolver=FakeResolver()
    )
    started = time.monotonic()
    with pytest.raises(ImageFetchFailedError, match="timeout"):
        await fetcher.fetch(origin.url("/cat.png", scheme="https"))
    assert time.monotonic() - started < 5


async def test_a_refused_connection_fails_cleanly() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the fetch: nothing listens
    fetcher = ImageFetcher(allowed(port), resolver=FakeResolver())
    with pytest.raises(ImageFetchFailedError, match="connection failed"):
        await fetcher.fetch(f"http://images.test:{port}/cat.png")


# --- size, encoding, content -------------------------------------------------------------


async def test_a_declared_length_over_the_cap_is_refused_before_reading(origin: Origin) -> None:
    origin.routes["/huge.png"] = declared_then_stall(10**12)
    fetcher = ImageFetcher(
        allowed(origin.port, max_bytes=1000, timeout_s=30), resolver=FakeResolver()
    )
    started = time.monotonic()
    with pytest.raises(ImageTooLargeError) as caught:
        await fetcher.fetch(origin.url("/huge.png"), param=PARAM)
    assert time.monotonic() - started < 5
    assert caught.value.param == PARAM


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(reply(200, PNG + bytes(50_000), length=None), id="no-length"),
        pytest.param(chunked(PNG + bytes(50_000), 4096), id="chunked"),
    ],
)
async def test_a_body_over_the_cap_is_cut_off_while_reading(
    origin: Origin, handler: Handler
) -> None:
    origin.routes["/big.png"] = handler
    fetcher = ImageFetcher(allowed(origin.port, max_bytes=10_000), resolver=FakeResolver())
    with pytest.raises(ImageTooLargeError, match="more than 10000 bytes"):
        await fetcher.fetch(origin.url("/big.png"))


async def test_a_content_length_that_lies_low_is_caught(origin: Origin) -> None:
    # The header says 100 bytes and a megabyte follows: the framing error fails the fetch
    # rather than handing on a truncated body.
    origin.routes["/liar.png"] = reply(200, PNG + bytes(1_000_000), length=100)
    fetcher = ImageFetcher(allowed(origin.port, max_bytes=10_000), resolver=FakeResolver())
    with pytest.raises(ImageFetchFailedError, match="malformed"):
        await fetcher.fetch(origin.url("/liar.png"))


async def test_a_body_shorter_than_its_content_length_fails(origin: Origin) -> None:
    origin.routes["/short.png"] = reply(200, PNG, length=len(PNG) + 500)
    fetcher = ImageFetcher(allowed(origin.port), resolver=FakeResolver())
    with pytest.raises(ImageFetchFailedError, match="cut short"):
        await fetcher.fetch(origin.url("/short.png"))


async def test_the_cap_is_inclusive(origin: Origin) -> None:
    origin.routes["/exact.png"] = reply(200, PNG + bytes(1000 - len(PNG)), length=None)
    origin.routes["/over.png"] = reply(200, PNG + bytes(1001 - len(PNG)), length=None)
    fetcher = ImageFetcher(allowed(origin.port, max_bytes=1000), resolver=FakeResolver())
    assert len((await fetcher.fetch(origin.url("/exact.png"))).data) == 1000
    with pytest.raises(ImageTooLargeError):
        await fetcher.fetch(origin.url("/over.png"))


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP"])
async def test_compressed_responses_are_refused(origin: Origin, encoding: str) -> None:
    origin.routes["/cat.png"] = image(gzip.compress(PNG), ("Content-Encoding", encoding))
    with pytest.raises(ImageFetchFailedError, match="compressed responses are not accepted"):
        await ImageFetcher(allowed(origin.port), resolver=FakeResolver()).fetch(
            origin.url("/cat.png")
        )


async def test_identity_encoding_is_fine(origin: Origin) -> None:
    origin.routes["/cat.png"] = image(PNG, ("Content-Encoding", "identity"))
    result = await ImageFetcher(allowed(origin.port), resolver=FakeResolver()).fetch(
        origin.url("/cat.png")
    )
    assert result.data == PNG


@pytest.mark.parametrize(
    ("body", "content_type", "described"),
    [
        (b"<!doctype html><p>login</p>", "text/html; charset=utf-8", "text/html"),
        (b"%PDF-1.7\n...", "image/png", "application/pdf"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", "image/svg+xml"),
        (b"", "image/png", "empty body"),
        (b"\x00\x01garbage", "<script>alert(1)</script>", "unknown type"),
    ],
)
async def test_a_body_that_is_not_an_image_is_refused(
    origin: Origin, body: bytes, content_type: str, described: str
) -> None:
    origin.routes["/cat.png"] = reply(200, body, [("Content-Type", content_type)])
    with pytest.raises(ImageFetchFailedError) as caught:
        await ImageFetcher(allowed(origin.port), resolver=FakeResolver()).fetch(
            origin.url("/cat.png")
        )
    assert f"not an image ({described})" in caught.value.message


@pytest.mark.parametrize("status", [404, 403, 410, 500, 503, 300, 304])
async def test_a_non_2xx_status_fails(origin: Origin, status: int) -> None:
    origin.routes["/cat.png"] = reply(status, b"" if status == 304 else PNG)
    with pytest.raises(ImageFetchFailedError, match=f"upstream status {status}"):
        await ImageFetcher(allowed(origin.port), resolver=FakeResolver()).fetch(
            origin.url("/cat.png")
        )


# --- errors never leak the path or query, and always carry param ------------------------

SECRET_PATH = "/tenant-7/private/cat.png?X-Amz-Signature=secret&X-Amz-Credential=AKIAEXAMPLE"


def _scenarios(origin: Origin) -> list[tuple[str, FetchPolicy, type[GatewayError]]]:
    path, query = SECRET_PATH.split("?")
    origin.routes["/tenant-7/private/cat.png"] = reply(404, b"secret body")
    origin.routes["/to-private"] = redirect(f"http://evil.test:{origin.port}{SECRET_PATH}")
    origin.routes["/loop"] = redirect(SECRET_PATH.replace(path, "/loop"))
    origin.routes["/html"] = reply(200, b"<html>", [("Content-Type", "text/html")])
    origin.routes["/gzip"] = image(gzip.compress(PNG), ("Content-Encoding", "gzip"))
    origin.routes["/big"] = reply(200, PNG + bytes(5000), length=None)
    origin.routes["/drip"] = drip(0.02)
    # Port 1 is listed too, so a URL to it gets as far as a refused connection.
    loose, strict = allowed(origin.port, 1, max_bytes=1000, timeout_s=0.5), FetchPolicy()
    url = origin.url
    return [
        (url(SECRET_PATH), loose, ImageFetchFailedError),
        (url(SECRET_PATH), strict, ImageUrlNotAllowedError),
        (url(SECRET_PATH, host="[::ffff:127.0.0.1]"), strict, ImageUrlNotAllowedError),
        (url("/to-private?" + query), loose, ImageUrlNotAllowedError),
        (url("/loop?" + query), loose, ImageFetchFailedError),
        (url("/html?" + query), loose, ImageFetchFailedError),
        (url("/gzip?" + query), loose, ImageFetchFailedError),
        (url("/big?" + query), loose, ImageTooLargeError),
        (url("/drip?" + query), loose, ImageFetchFailedError),
        (url(SECRET_PATH, scheme="ftp"), loose, ImageUrlNotAllowedError),
        (url(SECRET_PATH, host="user:secret@images.test"), loose, ImageUrlNotAllowedError),
        (f"http://images.test:99999{SECRET_PATH}", loose, ImageUrlNotAllowedError),
        (f"http://images.test:1{SECRET_PATH}", loose, ImageFetchFailedError),
    ]


def _chain(error: BaseException) -> str:
    """Everything a traceback would print about the error and its causes."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None:
        parts += [str(current), repr(current), repr(current.args)]
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return "\n".join(parts)


async def test_errors_name_the_host_only_and_carry_param(origin: Origin) -> None:
    for url, policy, kind in _scenarios(origin):
        fetcher = ImageFetcher(policy, resolver=FakeResolver())
        with pytest.raises(kind) as caught:
            await fetcher.fetch(url, param=PARAM)
        error = caught.value
        assert error.param == PARAM, url
        everything = _chain(error)
        for secret in ("secret", "X-Amz", "AKIAEXAMPLE", "tenant-7", "private/cat"):
            assert secret not in everything, (url, everything)


# --- the cache and single flight ---------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_control", "requests"),
    [(None, 1), ("max-age=3600", 1), ("public, max-age=60", 1), ("no-store", 2),
     ("no-cache", 2), ("max-age=0", 2)],
)  # fmt: skip
async def test_the_cache_honours_cache_control(
    origin: Origin, cache_control: str | None, requests: int
) -> None:
    headers = [] if cache_control is None else [("Cache-Control", cache_control)]
    origin.routes["/cat.png"] = image(PNG, *headers)
    fetcher = ImageFetcher(allowed(origin.port), resolver=FakeResolver())
    first = await fetcher.fetch(origin.url("/cat.png?sig=1"))
    second = await fetcher.fetch(origin.url("/cat.png?sig=1"))
    assert first == second
    assert len(origin.seen) == requests


async def test_the_cache_is_keyed_by_the_full_url(origin: Origin) -> None:
    origin.routes["/cat.png"] = image()
    fetcher = ImageFetcher(allowed(origin.port), resolver=FakeResolver())
    await fetcher.fetch(origin.url("/cat.png?sig=1"))
    await fetcher.fetch(origin.url("/cat.png?sig=2"))
    assert len(origin.seen) == 2


async def test_the_cache_drops_the_least_recently_used_when_its_bytes_run_out(
    origin: Origin,
) -> None:
    origin.routes["/a.png"] = image()
    origin.routes["/b.png"] = image()
    room_for_one = len(PNG) + len(origin.url("/a.png")) + 10
    fetcher = ImageFetcher(allowed(origin.port), resolver=FakeResolver(), cache_bytes=room_for_one)
    for path in ("/a.png", "/a.png", "/b.png", "/b.png", "/a.png"):
        await fetcher.fetch(origin.url(path))
    assert [seen.target for seen in origin.seen] == ["/a.png", "/b.png", "/a.png"]


async def test_failures_and_a_zero_budget_are_not_cached(origin: Origin) -> None:
    origin.routes["/missing.png"] = reply(404)
    origin.routes["/cat.png"] = image()
    fetcher = ImageFetcher(allowed(origin.port), resolver=FakeResolver(), cache_bytes=0)
    for _ in range(2):
        with pytest.raises(ImageFetchFailedError):
            await fetcher.fetch(origin.url("/missing.png"))
        await fetcher.fetch(origin.url("/cat.png"))
    assert len(origin.seen) == 4


async def test_concurrent_fetches_of_one_url_share_one_download(origin: Origin) -> None:
    origin.routes["/cat.png"] = delayed(0.2, image(PNG, ("Cache-Control", "no-store")))
    fetcher = ImageFetcher(allowed(origin.port), resolver=FakeResolver())
    results = await asyncio.gather(*(fetcher.fetch(origin.url("/cat.png")) for _ in range(5)))
    assert {result.data for result in results} == {PNG}
    assert len(origin.seen) == 1


async def test_a_shared_failure_reaches_each_caller_with_its_own_param(origin: Origin) -> None:
    origin.routes["/cat.png"] = delayed(0.2, reply(404))
    fetcher = ImageFetcher(allowed(origin.port), resolver=FakeResolver())
    outcomes = await asyncio.gather(
        *(fetcher.fetch(origin.url("/cat.png"), param=f"p{i}") for i in range(3)),
        return_exceptions=True,
    )
    assert [type(o) for o in outcomes] == [ImageFetchFailedError] * 3
    assert [o.param for o in outcomes if isinstance(o, GatewayError)] == ["p0", "p1", "p2"]
    assert len(origin.seen) == 1


async def test_a_waiter_takes_over_when_the_downloading_caller_is_cancelled(origin: Origin) -> None:
    origin.routes["/cat.png"] = delayed(0.3, image())
    fetcher = ImageFetcher(allowed(origin.port), resolver=FakeResolver())
    async with asyncio.TaskGroup() as group:
        leader = group.create_task(fetcher.fetch(origin.url("/cat.png")))
        await origin.requested.wait()
        waiter = group.create_task(fetcher.fetch(origin.url("/cat.png")))
        await asyncio.sleep(0.05)
        leader.cancel()
    assert leader.cancelled()
    assert waiter.result().data == PNG
    assert len(origin.seen) == 2


async def test_a_closed_fetcher_refuses_to_fetch(origin: Origin) -> None:
    origin.routes["/cat.png"] = image()
    fetcher = ImageFetcher(allowed(origin.port), resolver=FakeResolver())
    await fetcher.fetch(origin.url("/cat.png"))
    await fetcher.close()
    await fetcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        await fetcher.fetch(origin.url("/cat.png"))


# A self-signed certificate and key for images.test (EC P-256, valid until 2126).
CERT = """-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUSdU/7MKtAaSo3DuXfYW7Sh1d+8QwCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLaW1hZ2VzLnRlc3QwIBcNMjYxMTIwMjMzNDAxWhgPMjEyNjEw
MjcyMzM0MDFaMBYxFDASBgNVBAMMC2ltYWdlcy50ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAE6gZ40DuJAHT71AoScuz/4L5UAuswGTDfZ5A5Tvh48eVvNsvt
1ALWxdUqKSOnBRfe4eK6wyP90LZ/R+kfnvYIhaNrMGkwHQYDVR0OBBYEFAJQwTEF
mq+IJg5ZfdUthjIiQ6jNMB8GA1UdIwQYMBaAFAJQwTEFmq+IJg5ZfdUthjIiQ6jN
MA8GA1UdEwEB/wQFMAMBAf8wFgYDVR0RBA8wDYILaW1hZ2VzLnRlc3QwCgYIKoZI
zj0EAwIDSAAwRQIgeUQPnBDTSD1ixYHS/IZyoRds/7MWZPR1T0n4sdOVWLQCIQDM
DeqA1FsEEqiCWFnrzamC0UC/7Z/4wgYE3tO2F5vjKw==
-----END CERTIFICATE-----
"""
KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQglOME2gU/+PJDBoO9
ASvCa+uH19Jqmiw6MQJrWNPIE72hRANCAATqBnjQO4kAdPvUChJy7P/gvlQC6zAZ
MN9nkDlO+Hjx5W82y+3UAtbF1SopI6cFF97h4rrDI/3Qtn9H6R+e9giF
-----END PRIVATE KEY-----
"""
