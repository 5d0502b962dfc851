"""Chat endpoints: ``POST /v1/chat/completions``, ``POST /v1/messages`` and ``POST /c1/chat``,
and the Images API (``POST /v1/images/generations``, ``/v1/images/edits``), run the same way.

Each is parse -> run -> render: the dialect decides parse and render, the pipeline's exchange
runs the request there and back (stages, dispatch, after-steps); the endpoint ends the exchange
with the status the client got.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import NamedTuple

import msgspec
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from aperture.api.auth import authenticate
from aperture.api.body import ClientDisconnect, read_body
from aperture.api.departure import Departure, unless_departed
from aperture.api.drain import Drain
from aperture.api.render import error_response
from aperture.api.streaming import SseResponse
from aperture.dialects.anthropic import outbound as anthropic_outbound
from aperture.dialects.anthropic.inbound import parse_count_request, parse_messages_request
from aperture.dialects.c1.inbound import parse_c1_request
from aperture.dialects.openai import images as images_dialect
from aperture.dialects.openai import outbound
from aperture.dialects.openai.inbound import parse_chat_request
from aperture.dialects.responses import outbound as responses_outbound
from aperture.dialects.responses.inbound import parse_responses_request
from aperture.errors import GatewayError
from aperture.media.payloads import Payloads
from aperture.model import ChatRequest, ChatResponse
from aperture.model.locator import FieldLocator
from aperture.pipeline import AnswerStream, Exchange, StreamRenderer
from aperture.services import Services

__all__ = [
    "ANTHROPIC",
    "C1",
    "IMAGE_EDITS",
    "IMAGE_GENERATIONS",
    "OPENAI",
    "RESPONSES",
    "UPSTREAM_TAP",
    "ClientDialect",
    "chat_endpoint",
    "count_tokens",
    "new_request_id",
]


class ClientDialect(NamedTuple):
    """How one client API shape is parsed and rendered."""

    name: str
    parse: Callable[[bytes, Payloads], tuple[ChatRequest, FieldLocator]]
    """The body to the canonical request; image data the decoder decoded goes to the
    ``Payloads`` (the request context's), for intake."""
    render_response: Callable[[ChatResponse, str], bytes]
    stream_renderer: Callable[[str, int, str, bool], StreamRenderer]
    render_error: Callable[[GatewayError], bytes]
    parse_form: Callable[[bytes, str], tuple[ChatRequest, FieldLocator]] | None = None
    """Set for bodies whose reading needs their Content-Type (multipart): used over ``parse``."""


def _openai_stream(id: str, created: int, model: str, include_usage: bool) -> StreamRenderer:
    return outbound.StreamRenderer(id=id, created=created, model=model, include_usage=include_usage)


OPENAI = ClientDialect(
    "openai", parse_chat_request, outbound.render_response, _openai_stream, outbound.render_error
)
# The shortcut answers in the Chat Completions shape, like the gateway it was taken from.
C1 = ClientDialect(
    "c1", parse_c1_request, outbound.render_response, _openai_stream, outbound.render_error
)


def _anthropic_stream(id: str, created: int, model: str, include_usage: bool) -> StreamRenderer:
    return anthropic_outbound.AnthropicStreamRenderer(
        id=id, created=created, model=model, include_usage=include_usage
    )


ANTHROPIC = ClientDialect(
    "anthropic",
    parse_messages_request,
    anthropic_outbound.render_response,
    _anthropic_stream,
    anthropic_outbound.render_error,
)


def _no_form(body: bytes, payloads: Payloads) -> tuple[ChatRequest, FieldLocator]:
    raise AssertionError("parse_form reads this dialect")  # pragma: no cover


IMAGE_GENERATIONS = ClientDialect(
    "openai-images",
    images_dialect.parse_generation_request,
    images_dialect.render_images,
    _openai_stream,  # never used: image requests refuse stream
    outbound.render_error,
)
IMAGE_EDITS = ClientDialect(
    "openai-images",
    _no_form,
    images_dialect.render_images,
    _openai_stream,
    outbound.render_error,
    parse_form=images_dialect.parse_edit_request,
)


def _responses_stream(id: str, created: int, model: str, include_usage: bool) -> StreamRenderer:
    return responses_outbound.ResponsesStreamRenderer(
        id=id, created=created, model=model, include_usage=include_usage
    )


RESPONSES = ClientDialect(
    "responses",
    parse_responses_request,
    responses_outbound.render_response,
    _responses_stream,
    responses_outbound.render_error,
)


UPSTREAM_TAP = "aperture.upstream_tap"
"""The scope key under which the console's playground hands a request its upstream tap
(``RequestContext.upstream_tap``): set in-process only, never from anything a client sends."""


def new_request_id() -> str:
    """``req_``, the milliseconds since the epoch (12 hex digits), then 64 random bits.

    Time first, so ids made later sort later: the audit table's primary key then grows at
    its end. Random ids land all over the index, and on a table of a few hundred thousand
    events that more than doubles what the SQLite writer spends on each insert.
    """
    return f"req_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(8)}"


def chat_endpoint(dialect: ClientDialect) -> Callable[[Request], Awaitable[Response | SseResponse]]:
    """A Starlette endpoint serving ``dialect``."""

    async def endpoint(request: Request) -> Response | SseResponse:
        services: Services = request.app.state.services
        # The scope's path, not request.url.path: building a URL parses the whole address.
        exchange = services.pipeline.exchange(new_request_id(), request.scope["path"])
        drain = Drain.of(request.scope)
        read = False
        try:
            if drain is not None and drain.draining:
                raise drain.refusal()
            exchange.ctx.principal = await authenticate(request, services)
            exchange.ctx.upstream_tap = request.scope.get(UPSTREAM_TAP)
            body = await read_body(request, services.settings.server.max_body_bytes)
            read = True
            if dialect.parse_form is not None:
                content_type = request.headers.get("content-type", "")
                chat, locator = dialect.parse_form(body, content_type)
            else:
                chat, locator = dialect.parse(body, exchange.ctx.payloads)
            del body  # the raw bytes are no longer needed; big images live in `chat` now
            # From here the client can only leave: every wait below ends when it does.
            return await unless_departed(
                request.receive,
                drain,
                _answer(exchange, chat, locator, dialect, drain),
                Departure.of(request.scope),
            )
        except GatewayError as error:
            response = error_response(error, exchange.ctx.request_id, dialect.render_error)
            _drop_frames(error)
            if not read:
                # The body is not read, so the connection cannot carry another request.
                response.headers["connection"] = "close"
            response.background = BackgroundTask(exchange.end, error.status_code, error.code)
            return response
        except ClientDisconnect:
            await exchange.end(499, "client_disconnected")
            return Response(status_code=499)
        except BaseException as exc:
            # A bug, or a cancellation (shutdown): still settle what admission took, or the
            # budget hold would stay reserved until it lapses. ``end`` runs shielded.
            cancelled = not isinstance(exc, Exception)
            await exchange.end(*((499, "cancelled") if cancelled else (500, "internal_error")))
            raise

    return endpoint


TOKEN_COUNT_HEADER = "x-aperture-token-count"
"""``provider`` when the target's provider counted the tokens, ``estimate`` when the gateway
did (text at four characters a token, images at the target's image-token rule)."""


async def count_tokens(request: Request) -> Response:
    """``POST /v1/messages/count_tokens``: Anthropic's ``{"input_tokens": N}``, with the same
    key, model and input checks as a Messages request, and nothing charged."""
    services: Services = request.app.state.services
    exchange = services.pipeline.exchange(new_request_id(), request.scope["path"])
    render = anthropic_outbound.render_error
    try:
        exchange.ctx.principal = await authenticate(request, services)
        body = await read_body(request, services.settings.server.max_body_bytes)
        chat, locator = parse_count_request(body)
        del body
        counted = await exchange.count_tokens(chat, locator)
    except GatewayError as error:
        response = error_response(error, exchange.ctx.request_id, render)
        _drop_frames(error)
        response.background = BackgroundTask(exchange.end, error.status_code, error.code)
        return response
    except ClientDisconnect:
        await exchange.end(499, "client_disconnected")
        return Response(status_code=499)
    except BaseException as exc:
        cancelled = not isinstance(exc, Exception)
        await exchange.end(*((499, "cancelled") if cancelled else (500, "internal_error")))
        raise
    headers = {**_routed_headers(exchange), TOKEN_COUNT_HEADER: counted.source}
    return Response(
        msgspec.json.encode({"input_tokens": counted.input_tokens}),
        headers=headers,
        media_type="application/json",
        background=BackgroundTask(exchange.end, 200, None),
    )


async def _answer(
    exchange: Exchange,
    chat: ChatRequest,
    locator: FieldLocator,
    dialect: ClientDialect,
    drain: Drain | None,
) -> Response | SseResponse:
    answer = await exchange.run(chat, locator)
    if isinstance(answer, AnswerStream):
        return _stream(exchange, answer, chat, dialect, drain)
    # The exchange ends after the answer has gone: nothing recorded delays it.
    return Response(
        dialect.render_response(answer, chat.model),
        headers=_routed_headers(exchange),
        media_type="application/json",
        background=BackgroundTask(exchange.end, 200, None),
    )


def _stream(
    exchange: Exchange,
    stream: AnswerStream,
    chat: ChatRequest,
    dialect: ClientDialect,
    drain: Drain | None,
) -> SseResponse:
    renderer = dialect.stream_renderer(
        f"chatcmpl-{exchange.ctx.request_id[4:]}", int(time.time()), chat.model, chat.include_usage
    )

    async def close() -> None:
        # Cut by the drain, not by the client: the response sends the in-band error.
        await stream.close(shutting_down=drain is not None and drain.cutting)

    farewell = None
    if drain is not None:
        farewell = partial(renderer.error, drain.refusal())
    # The close runs from the response, not from the relay's ``finally``: a relay cancelled
    # before its first step never runs its ``finally``, and would leave the upstream call
    # open and the budget hold reserved.
    return SseResponse(
        stream.relay(renderer),
        _routed_headers(exchange),
        close,
        drain=drain,
        farewell=farewell,
        last=lambda: stream.last,
    )


def _drop_frames(error: BaseException) -> None:
    """Let go of the frames of a refusal that has been rendered, and of the errors behind it.

    Their frames hold the request (its body, a decoded image), and often sit in a reference
    cycle that only the cyclic collector frees: an error raised in a worker thread is kept by
    the future that carried it, whose frame its traceback holds. With young collections rare
    (``runtime.freeze_heap``), a stream of refused 4 MB images held gigabytes until then.
    """
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        each = pending.pop()
        if id(each) in seen:
            continue
        seen.add(id(each))
        each.__traceback__ = None
        pending.extend(e for e in (each.__cause__, each.__context__) if e is not None)


def _routed_headers(exchange: Exchange) -> dict[str, str]:
    attempt = exchange.attempt()
    assert attempt.target is not None
    headers = {
        "x-request-id": exchange.ctx.request_id,
        "x-aperture-provider": attempt.target.provider.name,
        "x-aperture-model": attempt.target.upstream_model,
        "x-aperture-attempts": str(attempt.attempts),
    }
    if exchange.ctx.images:
        headers["x-aperture-image-tokens"] = str(attempt.image_tokens)
        if attempt.image_changes:
            headers["x-aperture-image-changes"] = ",".join(attempt.image_changes)
    if exchange.ctx.documents:
        # Apart from the images': a document's pages cost by the provider's PDF rule, or
        # as the images the gateway rendered them to, or as text.
        headers["x-aperture-document-tokens"] = str(attempt.document_tokens)
    return headers
