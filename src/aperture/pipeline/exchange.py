"""One request's way through the pipeline and back.

The stages run in order; the router tries the targets; then the after-steps run in reverse:
on the answer (or on each event of a stream) before the client sees it, and, exactly once
and shielded from cancellation, when the request is over, however it ended. A client that
disconnects, a drain that cuts a stream, a bug: the budget is still settled and the audit
still written.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import anyio

from aperture.errors import GatewayError, ShuttingDownError
from aperture.governance.estimate import image_tokens, text_tokens
from aperture.model import (
    ChatRequest,
    ChatResponse,
    Delta,
    GeneratedImage,
    StreamEvent,
    Usage,
    UsageReport,
)
from aperture.model.locator import FieldLocator
from aperture.pipeline.attempts import RequestAttempts
from aperture.pipeline.context import Attempt, Outcome, RequestContext
from aperture.pipeline.document_prepare import DocumentPreparer
from aperture.pipeline.normalize import ImagePreparer
from aperture.pipeline.record import image_descriptors, text_portions
from aperture.pipeline.step import After, Step, StreamFilter
from aperture.routing.dispatch import EventStream
from aperture.routing.router import Attempts, Router

__all__ = ["AnswerStream", "Dispatch", "Exchange", "Pipeline", "StreamRenderer", "TokenCount"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Dispatch:
    """What a request is dispatched with, between the pipeline's two ways."""

    router: Router
    images: ImagePreparer
    """Per-target image preparation, run at each attempt."""
    observe: Callable[[str, str, float], None] | None = None
    """Told of each attempt: target key, outcome, seconds."""
    documents: DocumentPreparer | None = None
    """Per-target document forms (native, rendered pages, text), run at each attempt."""

    def attempts(
        self, ctx: RequestContext, request: ChatRequest
    ) -> tuple[Attempts, RequestAttempts]:
        assert ctx.resolution is not None, "ResolveModel runs first"
        hooks = RequestAttempts(ctx, self.images, self.observe, self.documents)
        return self.router.attempts(request, ctx.resolution, ctx.options, hooks), hooks


class Pipeline:
    """The steps every request passes, and what dispatches it between the two ways."""

    def __init__(self, steps: tuple[Step, ...], dispatch: Dispatch) -> None:
        self.steps = steps
        self.dispatch = dispatch

    def exchange(self, request_id: str, endpoint: str) -> Exchange:
        """A new request's exchange; from here on its ``end`` must be called, once."""
        return Exchange(self, RequestContext(request_id, endpoint))


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A request's input tokens, and whether the provider counted them or the gateway."""

    input_tokens: int
    source: Literal["provider", "estimate"]


class StreamRenderer(Protocol):
    """How a stream's events are written in the client's dialect."""

    def event(self, event: StreamEvent) -> bytes: ...

    def done(self) -> bytes: ...

    def error(self, error: GatewayError) -> bytes: ...


class Exchange:
    """One request: ``run`` it, render what it returns, then ``end`` it with the status the
    client got. Only ``end`` runs the after-steps' ends, and only once."""

    def __init__(self, pipeline: Pipeline, ctx: RequestContext) -> None:
        self.ctx = ctx
        self._pipeline = pipeline
        self._steps = pipeline.steps
        # Leading steps without a stage are reached by every request, even one refused
        # before the pipeline runs (no key, a body that does not parse).
        self._reached = 0
        while self._reached < len(self._steps) and self._steps[self._reached].stage is None:
            self._reached += 1
        self._attempts: Attempts | None = None
        self._hooks: RequestAttempts | None = None
        self._usage: Usage | None = None
        self._reported: int | None = None
        self._streamed_chars = 0
        self._generated: list[GeneratedImage] = []
        self._ended = False

    async def run(self, request: ChatRequest, locator: FieldLocator) -> ChatResponse | AnswerStream:
        """The answer to ``request``, screened; for a stream, the stream once it has opened.

        Raises:
            GatewayError: a stage refused the request, every attempt failed, or an
                after-step refused the answer.
        """
        ctx = self.ctx
        ctx.locator = locator
        ctx.texts = text_portions(request)
        request = await self._before(request)
        attempts, self._hooks = self._pipeline.dispatch.attempts(ctx, request)
        self._attempts = attempts
        if request.stream:
            return await self._open(attempts)
        # The images are hashed by the end steps, after the answer has gone: hashing a 4 MB
        # image takes longer than a fast provider's whole answer, and the client must not
        # wait for it.
        response = await attempts.complete()
        self._usage = response.usage
        if response.usage is not None:
            self._reported = response.usage.image_tokens
        for choice in response.choices:
            self._generated.extend(choice.images or ())
        for after in self._afters():
            response = await after.answer(ctx, response)
        return response

    async def count_tokens(self, request: ChatRequest, locator: FieldLocator) -> TokenCount:
        """``request``'s input tokens: the first target's own count where its kind has one,
        else the gateway's estimate (text, tools and images at that target's image rule,
        documents in the form that target takes them).
        Every stage runs (key, model, capabilities, images, policy) but nothing is charged.

        Raises:
            GatewayError: a stage refused the request, or every count attempt failed.
        """
        ctx = self.ctx
        ctx.locator = locator
        ctx.counting = True
        ctx.texts = text_portions(request)
        request = await self._before(request)
        attempts, self._hooks = self._pipeline.dispatch.attempts(ctx, request)
        self._attempts = attempts
        counted = await attempts.count_tokens()
        if counted is not None:
            return TokenCount(counted, "provider")
        options = [o for o in ctx.options if o.target == attempts.target] or list(ctx.options)
        estimate = text_tokens(request) + image_tokens(request, ctx.images, options[:1])
        # The documents as that target takes them (prepared by the count's attempt).
        estimate += self._hooks.document_tokens
        return TokenCount(estimate, "estimate")

    def attempt(self) -> Attempt:
        """What the attempts have produced so far (nothing before dispatch)."""
        attempts, hooks = self._attempts, self._hooks
        if attempts is None or hooks is None:
            return Attempt()
        return Attempt(
            target=attempts.target,
            attempts=attempts.count,
            upstream_s=attempts.upstream_s,
            image_tokens=hooks.image_tokens,
            image_changes=hooks.image_changes,
            image_bytes_saved=hooks.bytes_saved,
            tried=tuple(hooks.tried),
            document_tokens=hooks.document_tokens,
            usage=self._usage,
            reported_image_tokens=self._reported,
            streamed_chars=self._streamed_chars,
            generated=tuple(self._generated),
        )

    async def end(self, status: int, code: str | None) -> None:
        """Run the after-steps' ends in reverse order: once, however often it is called,
        shielded from cancellation. Each runs even if one before it failed; then the image
        bytes are let go.

        Raises:
            Exception: the first end step's failure, once all have run.
        """
        if self._ended:
            return
        self._ended = True
        outcome = Outcome(status, code, self.attempt())
        failure: Exception | None = None
        with anyio.CancelScope(shield=True):
            for after in self._afters():
                try:
                    await after.end(self.ctx, outcome)
                except Exception as exc:
                    failure = failure or exc
        self.ctx.decoded.clear()
        self.ctx.payloads.clear()
        self.ctx.documents.clear()
        if failure is not None:
            raise failure

    async def _before(self, request: ChatRequest) -> ChatRequest:
        for index, step in enumerate(self._steps):
            self._reached = max(self._reached, index + 1)
            if step.stage is not None:
                request = await step.stage(self.ctx, request)
        return request

    def _afters(self) -> list[After]:
        """The after-steps of the steps reached, innermost first."""
        reached = self._steps[: self._reached]
        return [step.after for step in reversed(reached) if step.after is not None]

    async def _open(self, attempts: Attempts) -> AnswerStream:
        opened: list[EventStream] = []

        async def open_stream() -> EventStream:
            stream = await attempts.open_stream()
            opened.append(stream)
            return stream

        # Opening waits for the provider's status and first event, so early failures are
        # still proper HTTP errors (or fail over to the next target). The images are hashed
        # meanwhile: after the stream, the hash would hold back its end.
        try:
            stream = await _while_hashing(self.ctx, open_stream())
        except BaseException:
            # Cancelled (the client left) after the stream opened but before the hashing ended.
            with anyio.CancelScope(shield=True):
                for each in opened:
                    await each.aclose()
            raise
        filters = [f for after in self._afters() if (f := after.stream(self.ctx)) is not None]
        return AnswerStream(self, stream, tuple(filters))

    def _noted(self, event: StreamEvent) -> None:
        if isinstance(event, UsageReport):
            self._usage = event.usage
            self._reported = event.usage.image_tokens
        elif isinstance(event, Delta):
            if event.content:
                self._streamed_chars += len(event.content)
            if event.images:
                self._generated.extend(event.images)


class AnswerStream:
    """An opened stream on its way to the client, through the after-steps' filters."""

    def __init__(
        self, exchange: Exchange, stream: EventStream, filters: tuple[StreamFilter, ...]
    ) -> None:
        self._exchange = exchange
        self._stream = stream
        self._filters = filters
        # Until the stream reaches its end, it is one the client left.
        self._status = 499
        self._code: str | None = "client_disconnected"
        self._last = False

    @property
    def last(self) -> bool:
        """The piece ``relay`` has just yielded is its last: the response may end with it
        (one write for the last events and the end of the body)."""
        return self._last

    async def relay(self, renderer: StreamRenderer) -> AsyncGenerator[bytes, None]:
        """The stream's events in the client's dialect, then its end, or one error event.

        One piece per batch of the provider's events: what arrived together leaves in one
        write. The batch that ends the stream goes with the stream's end when no filter is
        left to finish (a filter's finish may wait, and must not hold back what arrived).
        """
        stream, noted, filters = self._stream, self._exchange._noted, self._filters
        tail: list[bytes] = []
        try:
            async for batch in stream.batches():
                pieces: list[bytes] = []
                for event in batch:
                    noted(event)
                    if not filters:
                        pieces.append(renderer.event(event))
                        continue
                    pieces.extend(renderer.event(e) for e in self._filtered(event))
                if stream.complete and not filters:
                    tail = pieces  # the end follows without another read
                    continue
                yield b"".join(pieces)
            for held in await self._finish():
                tail.append(renderer.event(held))
            tail.append(renderer.done())
            self._last = True
            yield b"".join(tail)
            self._status, self._code = 200, None
        except GatewayError as error:
            # Headers are sent: one in-band error event, and never a fake [DONE].
            self._status, self._code = error.status_code, error.code
            self._last = True
            yield b"".join([*tail, renderer.error(error)])

    async def close(self, *, shutting_down: bool = False) -> None:
        """Close the provider's stream and end the exchange with how the stream ended.

        ``shutting_down``: the stream was cut by the drain, not by the client, which is sent
        the in-band error.
        """
        status, code = self._status, self._code
        if status == 499 and shutting_down:
            status, code = ShuttingDownError.status, ShuttingDownError.code
        try:
            await self._stream.aclose()
        finally:
            await self._exchange.end(status, code)

    def _filtered(self, event: StreamEvent) -> list[StreamEvent]:
        events = [event]
        for each in self._filters:
            events = [out for e in events for out in each.event(e)]
        return events

    async def _finish(self) -> list[StreamEvent]:
        # What one filter still held passes through the filters after it before they finish.
        pending: list[StreamEvent] = []
        for each in self._filters:
            pending = [out for e in pending for out in each.event(e)]
            pending += await each.finish()
        return pending


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
