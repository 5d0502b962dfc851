"""What a provider sends is bounded: huge stream events, endless error bodies, huge answers.

A real gateway over HTTP in front of a small upstream of the test's own, which streams what
a misbehaving provider would: an 8 MB event in 1 KB writes (relayed whole), an event that
never ends (cut at ``max_event_bytes``, before or after the first byte), an error body
that never ends and a 200 answer over ``max_response_bytes``.
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from aperture.app import create_app
from aperture.settings import parse_settings
from tests.servers import serve

EIGHT_MB = 8 * 1024 * 1024
CAP = 1024 * 1024
KB = b"x" * 1024


def _chunk(content: str) -> bytes:
    body = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    body["choices"] = [{"index": 0, "delta": {"content": content}}]  # type: ignore[assignment]
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def _big_event() -> AsyncIterator[bytes]:
    yield _chunk("start")
    head = _chunk("")
    prefix, suffix = head.split(b'"content": ""')
    yield prefix + b'"content": "'
    for _ in range(EIGHT_MB // 1024):
        yield KB
    yield b'"' + suffix
    yield b"data: [DONE]\n\n"


async def _endless(request: Request, first: bool) -> AsyncIterator[bytes]:
    if not first:
        yield _chunk("start")
    yield b'data: {"choices":[{"index":0,"delta":{"content":"'
    async for chunk in _until_gone(request):
        yield chunk


async def _ollama() -> AsyncIterator[bytes]:
    line = b'{"model":"m","message":{"role":"assistant","content":"'
    yield line
    for _ in range(EIGHT_MB // 1024):
        yield KB
    yield b'"},"done":false}\n'
    # The last line has no newline: the decoder's flush must still deliver it.
    yield b'{"model":"m","done":true,"done_reason":"stop","prompt_eval_count":1,"eval_count":2}'


async def _until_gone(request: Request) -> AsyncIterator[bytes]:
    """Up to 1 GB, 64 KB at a time, until the gateway hangs up (it must, long before)."""
    for _ in range(16_384):
        if await request.is_disconnected():
            return
        yield KB * 64


@functools.cache
def _bomb() -> bytes:
    return gzip.compress(b"{" + b" " * (256 * 1024 * 1024) + b"}", compresslevel=1)


def upstream_app() -> Starlette:
    async def chat(request: Request) -> Response:
        kind = request.path_params["kind"]
        await request.body()
        sse = {"media_type": "text/event-stream"}
        match kind:
            case "big":
                return StreamingResponse(_big_event(), **sse)
            case "endless-first":
                return StreamingResponse(_endless(request, first=True), **sse)
            case "endless-later":
                return StreamingResponse(_endless(request, first=False), **sse)
            case "error-forever":
                body = _until_gone(request)
                return StreamingResponse(body, status_code=500, media_type="text/plain")
            case "gzip-bomb":  # 256 MB of JSON whitespace in 256 KB on the wire
                headers = {"content-encoding": "gzip"}
                return Response(_bomb(), headers=headers, media_type="application/json")
            case "huge-header":
                return Response(b"{}", headers={"x-big": "h" * 100_000})
            case _:  # "huge-answer": a 200 over max_response_bytes, by its Content-Length
                return Response(b"{" + b" " * (CAP + 10) + b"}", media_type="application/json")

    async def ollama(request: Request) -> Response:
        await request.body()
        return StreamingResponse(_ollama(), media_type="application/x-ndjson")

    return Starlette(
        routes=[
            Route("/{kind}/v1/chat/completions", chat, methods=["POST"]),
            Route("/ollama/api/chat", ollama, methods=["POST"]),
        ]
    )


CONFIG = """
storage: {{database: "sqlite:///{state}/db.sqlite", spool_dir: "{state}/spool"}}
providers:
{providers}
models:
{models}
"""
KINDS = [
    "big",
    "endless-first",
    "endless-later",
    "error-forever",
    "huge-answer",
    "gzip-bomb",
    "huge-header",
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("stream-limits")
    with serve(upstream_app()) as upstream:
        limits = f"max_event_bytes: {CAP}, max_response_bytes: {CAP}"
        providers = [
            f"  - {{name: p-{k}, kind: openai, base_url: '{upstream}/{k}/v1', {limits}}}"
            for k in KINDS
        ]
        providers.append(f"  - {{name: p-ollama, kind: ollama, base_url: '{upstream}/ollama'}}")
        providers[0] = f"  - {{name: p-big, kind: openai, base_url: '{upstream}/big/v1'}}"
        models = [f"  - {{name: {k}, provider: p-{k}}}" for k in [*KINDS, "ollama"]]
        text = CONFIG.format(state=state, providers="\n".join(providers), models="\n".join(models))
        with serve(create_app(parse_settings(text, {}))) as url:
            yield url


def ask(gateway: str, model: str, *, stream: bool) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    body["stream"] = stream
    return httpx.post(f"{gateway}/v1/chat/completions", json=body, timeout=60)


def contents(response: httpx.Response) -> tuple[str, list[dict[str, Any]]]:
    """The streamed text, and any in-band errors."""
    text, errors = "", []
    for line in response.text.splitlines():
        if line.startswith("data: {"):
            event = json.loads(line[6:])
            if "error" in event:
                errors.append(event["error"])
            for choice in event.get("choices", []):
                text += choice["delta"].get("content") or ""
    return text, errors


@pytest.mark.parametrize("model", ["big", "ollama"])
def test_an_8_mb_event_in_1_kb_writes_is_relayed_whole(gateway: str, model: str) -> None:
    response = ask(gateway, model, stream=True)
    assert response.status_code == 200, response.text[:300]
    text, errors = contents(response)
    assert errors == []
    assert text.count("x") == EIGHT_MB
    assert response.text.rstrip().endswith("data: [DONE]")


def test_an_event_over_the_cap_before_the_first_byte_is_a_502(gateway: str) -> None:
    response = ask(gateway, "endless-first", stream=True)
    assert response.status_code == 502, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "upstream_error"
    assert f"over the limit of {CAP} bytes (providers[].max_event_bytes)" in error["message"]


def test_an_event_over_the_cap_mid_stream_is_one_in_band_error(gateway: str) -> None:
    response = ask(gateway, "endless-later", stream=True)
    assert response.status_code == 200
    text, errors = contents(response)
    assert text == "start"
    assert [e["code"] for e in errors] == ["upstream_error"]
    assert "max_event_bytes" in errors[0]["message"]
    assert "[DONE]" not in response.text


@pytest.mark.parametrize("stream", [False, True])
def test_an_endless_error_body_is_read_only_so_far(gateway: str, stream: bool) -> None:
    # 1 GB would take the gateway many seconds to read, and gigabytes to hold.
    response = ask(gateway, "error-forever", stream=stream)
    assert response.status_code in (502, 503), response.text[:300]
    assert len(response.content) < 2000


def test_an_answer_over_max_response_bytes_is_a_502(gateway: str) -> None:
    response = ask(gateway, "huge-answer", stream=False)
    assert response.status_code == 502, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "upstream_error"
    assert "(providers[].max_response_bytes)" in error["message"]


def test_a_compressed_answer_is_capped_by_what_it_inflates_to(gateway: str) -> None:
    response = ask(gateway, "gzip-bomb", stream=False)
    assert response.status_code == 502, response.text[:300]
    assert "(providers[].max_response_bytes)" in response.json()["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_provider_header_over_the_http_clients_bound_is_an_upstream_failure(
    gateway: str, stream: bool
) -> None:
    response = ask(gateway, "huge-header", stream=stream)
    assert response.status_code == 503, response.text[:300]
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert len(response.content) < 2000
