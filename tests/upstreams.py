"""Small real upstreams for gateway tests: one that records, one that streams slowly."""

from __future__ import annotations

import threading

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Recorder:
    """Wraps an upstream app and keeps the last request body and headers it received."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        self.bodies.append(body)
        self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class SlowStream:
    """An OpenAI-style stream that sends one chunk every 50 ms for up to 10 s.

    ``closed`` is set when the stream stops early, which happens only when the gateway
    goes away: proof that a client's disconnect reaches the upstream.
    """

    def __init__(self) -> None:
        self.started = threading.Event()
        self.closed = threading.Event()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    async def _chat(self, request: Request) -> StreamingResponse:
        await request.body()

        async def chunks():  # type: ignore[no-untyped-def]
            self.started.set()
            try:
                for i in range(200):
                    yield (
                        'data: {"id":"c","object":"chat.completion.chunk","created":1,'
                        f'"model":"slow","choices":[{{"index":0,"delta":{{"content":"{i} "}},'
                        '"finish_reason":null}]}\n\n'
                    )
                    await anyio.sleep(0.05)
                yield "data: [DONE]\n\n"
            finally:
                self.closed.set()

        return StreamingResponse(chunks(), media_type="text/event-stream")
