"""Small real upstreams for gateway tests: one that records, one that streams slowly."""

from __future__ import annotations

import threading

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
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


def image_server_app() -> Starlette:
    """Images on a local web server, for the gateway's fetcher (127.0.0.0/8 on its port)."""
    from tests import sample_images

    photo = sample_images.jpeg(300, 200)

    async def image(request: Request) -> Response:
        return Response(photo, media_type="image/jpeg")

    async def page(request: Request) -> Response:
        return Response("<html>not an image</html>", media_type="text/html")

    async def to_private(request: Request) -> RedirectResponse:
        return RedirectResponse("http://10.0.0.1/internal.png", status_code=302)

    return Starlette(
        routes=[
            Route("/photo.jpg", image),
            Route("/page.html", page),
            Route("/redirect-private", to_private),
        ]
    )


def stalling_app() -> Starlette:
    """An OpenAI-style stream that sends one chunk, then nothing for ten seconds."""

    async def chat(request: Request) -> StreamingResponse:
        await request.body()

        async def chunks():  # type: ignore[no-untyped-def]
            yield (
                'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
                '"choices":[{"index":0,"delta":{"role":"assistant","content":"first "},'
                '"finish_reason":null}]}\n\n'
            )
            await anyio.sleep(10)
            yield "data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
