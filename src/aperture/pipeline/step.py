"""The shape of the pipeline's steps, in the Starlette middleware shape: each runs on the way
in, and may run again on the way back, in reverse order.

A stage is ``async (ctx, request) -> request``: the (possibly rebuilt) request, or a
``GatewayError`` to reject it. An after-step is what a step does on the way back: on a whole
answer (``answer``), on a stream's events (``stream``), and once the request is over however
it ended, answer, stream or failure (``end``: settle, audit, count).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

from aperture.model import ChatRequest, ChatResponse, StreamEvent
from aperture.pipeline.context import Outcome, RequestContext

__all__ = ["After", "Stage", "Step", "StreamFilter"]

Stage = Callable[[RequestContext, ChatRequest], Awaitable[ChatRequest]]


class StreamFilter(Protocol):
    """One stream's pass through an after-step: events in, the events to send out."""

    def event(self, event: StreamEvent) -> list[StreamEvent]:
        """What to send for ``event``: possibly nothing yet, possibly held-back events first.

        Raises:
            GatewayError: the answer may not go on; the stream ends with this error.
        """
        ...

    async def finish(self) -> list[StreamEvent]:
        """What is still held, once the provider's stream is over.

        Raises:
            GatewayError: as ``event``.
        """
        ...


class After:
    """A step's way back. Each part is optional: the defaults let everything through."""

    async def answer(self, ctx: RequestContext, response: ChatResponse) -> ChatResponse:
        """The answer as the client may see it.

        Raises:
            GatewayError: the answer may not be sent.
        """
        return response

    def stream(self, ctx: RequestContext) -> StreamFilter | None:
        """The filter this request's stream passes through, if any."""
        return None

    async def end(self, ctx: RequestContext, outcome: Outcome) -> None:
        """Once the request is over, however it ended; runs shielded from cancellation."""


class Step(NamedTuple):
    """An entry of the pipeline: a stage, its after-step, or both.

    The after-step runs when the request reached the step: when the stage was called
    (whether or not it let the request through), or for a step without a stage, when every
    stage before it had passed. A first step without a stage is reached by every request,
    even one refused before the first stage (authentication, a body that does not parse).
    """

    stage: Stage | None = None
    after: After | None = None
