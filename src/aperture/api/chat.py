"""Chat endpoints: ``POST /v1/chat/completions`` and ``POST /c1/chat``.

Each is parse -> pipeline -> dispatch -> render; the dialect decides parse and render.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from functools import partial
from typing import NamedTuple, TypeVar

import anyio
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from aperture.api.accounting import image_descriptors, record, text_portions
from aperture.api.auth import authenticate
from aperture.api.body import ClientDisconnect, read_body
from aperture.api.departure import unless_departed
from aperture.api.drain import Drain
from aperture.api.render import error_response
from aperture.api.streaming import SseResponse
from aperture.dialects.anthropic import outbound as anthropic_outbound
from aperture.dialects.anthropic.inbound import parse_messages_request
from aperture.dialects.c1.inbound import parse_c1_request
from aperture.dialects.openai import outbound
from aperture.dialects.openai.inbound import parse_chat_request
from aperture.errors import GatewayError, ShuttingDownError
from aperture.model import ChatRequest, ChatResponse, Delta, StreamEvent, UsageReport
from aperture.model.locator import FieldLocator
from aperture.pipeline import RequestAttempts, RequestContext
from aperture.routing.dispatch import EventStream
from aperture.services import Services

T = TypeVar("T")

__all__ = ["ANTHROPIC", "C1", "OPENAI", "ClientDialect", "chat_endpoint", "new_request_id"]


class StreamRenderer(NamedTuple):
    event: Callable[[StreamEvent], bytes]
    done: Callable[[], bytes]
    error: Callable[[GatewayError], bytes]


class ClientDialect(NamedTuple):
    """How one client API shape is parsed and rendered."""

    name: str
    parse: Callable[[bytes], tuple[ChatRequest, FieldLocator]]
    render_response: Callable[[ChatResponse, str], bytes]
    stream_renderer: Callable[[str, int, str, bool], StreamRenderer]
    render_error: Callable[[GatewayError], bytes]


def _openai_stream(id: str, created: int, model: str, include_usage: bool) -> StreamRenderer:
    renderer = outbound.StreamRenderer(
        id=id, created=created, model=model, include_usage=include_usage
    )
    return StreamRenderer(renderer.event, renderer.done, renderer.error)


OPENAI = ClientDialect(
    "openai", parse_chat_request, outbound.render_response, _openai_stream, outbound.render_error
)
# The shortcut answers in the Chat Completions shape, like the gateway it was taken from.
C1 = ClientDialect(
    "c1", parse_c1_request, outbound.render_response, _openai_stream, outbound.render_error
)


def _anthropic_stream(id: str, created: int, model: str, include_usage: bool) -> StreamRenderer:
    renderer = anthropic_outbound.AnthropicStreamRenderer(
        id=id, created=created, model=model, include_usage=include_usage
    )
    return StreamRenderer(renderer.event, renderer.done, renderer.error)


ANTHROPIC = ClientDialect(
    "anthropic",
    parse_messages_request,
    anthropic_outbound.render_response,
    _anthropic_stream,
    anthropic_outbound.render_error,
)


def new_request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


def chat_endpoint(dialect: ClientDialect) -> Callable[[Request], Awaitable[Response | SseResponse]]:
    """A Starlette endpoint serving ``dialect``."""

    async def endpoint(request: Request) -> Response | SseResponse:
        services: Services = request.app.state.services
        # The scope's path, not request.url.path: building a URL parses the whole address.
        ctx = RequestContext(new_request_id(), request.scope["path"])
        drain = Drain.of(request.scope)
        read = False
        try:
            if drain is not None and drain.draining:
                raise drain.refusal()
            ctx.principal = await authenticate(request, services)
            body = await read_body(request, services.settings.server.max_body_bytes)
            read = True
            chat, ctx.locator = dialect.parse(body)
            ctx.texts = text_portions(chat)
            del body  # the raw bytes are no longer needed; big images live in `chat` now
            # From here the client can only leave: every wait below ends when it does.
            return await unless_departed(
                request.receive, drain, _answer(services, ctx, chat, dialect, drain)
            )
        except GatewayError as error:
            response = error_response(error, ctx.request_id, dialect.render_error)
            if not read:
                # The body is not read, so the connection cannot carry another request.
                response.headers["connection"] = "close"
            response.background = BackgroundTask(
                record,
                ctx,
                error.status_code,
                error.code,
                services.audit,
                services.metrics,
                services.admission,
            )
            return response
        except ClientDisconnect:
            await record(
                ctx,
                499,
                "client_disconnected",
                services.audit,
                services.metrics,
                services.admission,
            )
            return Response(status_code=499)
        except BaseException as exc:
            # A bug, or a cancellation (shutdown): still settle what admission took, or the
            # budget hold would stay reserved until it lapses. ``record`` runs shielded.
            cancelled = not isinstance(exc, Exception)
            status, code = (499, "cancelled") if cancelled else (500, "internal_error")
            await record(ctx, status, code, services.audit, services.metrics, services.admission)
            raise

    return endpoint


async def _answer(
    services: Services,
    ctx: RequestContext,
    chat: ChatRequest,
    dialect: ClientDialect,
    drain: Drain | None,
) -> Response | SseResponse:
    chat = await services.pipeline.run(ctx, chat)
    if chat.stream:
        return await _stream(services, ctx, chat, dialect, drain)
    return await _complete(services, ctx, chat, dialect)


async def _complete(
    services: Services, ctx: RequestContext, chat: ChatRequest, dialect: ClientDialect
) -> Response:
    assert ctx.resolution is not None, "ResolveModel runs first"
    attempts = RequestAttempts(ctx, services.images, services.metrics.attempt)
    # The images are hashed by ``record``, after the answer has gone: hashing a 4 MB image
    # takes longer than a fast provider's whole answer, and the client must not wait for it.
    response = await services.router.complete(chat, ctx.resolution, ctx.options, attempts)
    ctx.usage = response.usage
    if response.usage is not None:
        ctx.reported_image_tokens = response.usage.image_tokens
    if services.answers.needed(ctx):
        response = await services.answers.complete(ctx, response)
    return Response(
        dialect.render_response(response, chat.model),
        headers=_routed_headers(ctx),
        media_type="application/json",
        background=BackgroundTask(
            record, ctx, 200, None, services.audit, services.metrics, services.admission
        ),
    )


async def _stream(
    services: Services,
    ctx: RequestContext,
    chat: ChatRequest,
    dialect: ClientDialect,
    drain: Drain | None,
) -> SseResponse:
    assert ctx.resolution is not None, "ResolveModel runs first"
    attempts = RequestAttempts(ctx, services.images, services.metrics.attempt)
    opened: list[EventStream] = []

    async def open_stream() -> EventStream:
        assert ctx.resolution is not None
        stream = await services.router.open_stream(chat, ctx.resolution, ctx.options, attempts)
        opened.append(stream)
        return stream

    # Opening waits for the provider's status and first event, so early failures are still
    # proper HTTP errors (or fail over to the next target). The images are hashed meanwhile:
    # after the stream, the hash would hold back its end.
    try:
        stream = await _while_hashing(ctx, open_stream())
    except BaseException:
        # Cancelled (the client left) after the stream opened but before the hashing ended.
        with anyio.CancelScope(shield=True):
            for each in opened:
                await each.aclose()
        raise
    renderer = dialect.stream_renderer(
        f"chatcmpl-{ctx.request_id[4:]}", int(time.time()), chat.model, chat.include_usage
    )
    outcome = _Outcome()

    async def close() -> None:
        await stream.aclose()
        if outcome.status == 499 and drain is not None and drain.cutting:
            # Cancelled by the drain's cut, not by the client: the response sends the
            # in-band error.
            outcome.status, outcome.code = ShuttingDownError.status, ShuttingDownError.code
        await record(
            ctx, outcome.status, outcome.code, services.audit, services.metrics, services.admission
        )

    farewell = None
    if drain is not None:
        farewell = partial(renderer.error, drain.refusal())
    # The close runs from the response, not from the relay's ``finally``: a relay cancelled
    # before its first step never runs its ``finally``, and would leave the upstream call
    # open and the budget hold reserved.
    return SseResponse(
        _relay(stream, renderer, ctx, services, outcome),
        _routed_headers(ctx),
        close,
        drain=drain,
        farewell=farewell,
    )


class _Outcome:
    """How a relayed stream ended, for the record written when it closes."""

    status: int = 499
    code: str | None = "client_disconnected"


async def _relay(
    stream: EventStream,
    renderer: StreamRenderer,
    ctx: RequestContext,
    services: Services,
    outcome: _Outcome,
) -> AsyncGenerator[bytes, None]:
    screen = services.answers.stream(ctx)
    try:
        async for event in stream.events():
            if isinstance(event, UsageReport):
                ctx.usage = event.usage
                ctx.reported_image_tokens = event.usage.image_tokens
            elif isinstance(event, Delta) and event.content:
                ctx.streamed_chars += len(event.content)
            if screen is None:
                yield renderer.event(event)
                continue
            for screened in screen.event(event):
                yield renderer.event(screened)
        if screen is not None:
            for held in await screen.finish():
                yield renderer.event(held)
        yield renderer.done()
        outcome.status, outcome.code = 200, None
    except GatewayError as error:
        # Headers are sent: one in-band error event, and never a fake [DONE].
        outcome.status, outcome.code = error.status_code, error.code
        yield renderer.error(error)


async def _while_hashing(ctx: RequestContext, work: Awaitable[T]) -> T:
    """``work``'s result, with the images hashed for the audit while the provider works
    (hashlib releases the GIL, so it runs in parallel)."""
    if not ctx.images:
        return await work
    outcome: list[T] = []
    failure: list[BaseException] = []

    async def run() -> None:
        try:
            outcome.append(await work)
        except GatewayError as error:
            # Raised after the group, so the client's error is not wrapped in a group.
            failure.append(error)

    async with anyio.create_task_group() as group:
        group.start_soon(image_descriptors, ctx)
        group.start_soon(run)
    if failure:
        raise failure[0]
    return outcome[0]


def _routed_headers(ctx: RequestContext) -> dict[str, str]:
    assert ctx.target is not None
    headers = {
        "x-request-id": ctx.request_id,
        "x-aperture-provider": ctx.target.provider.name,
        "x-aperture-model": ctx.target.upstream_model,
        "x-aperture-attempts": str(ctx.attempts),
    }
    if ctx.images:
        headers["x-aperture-image-tokens"] = str(ctx.image_tokens)
        if ctx.image_changes:
            headers["x-aperture-image-changes"] = ",".join(ctx.image_changes)
    return headers
