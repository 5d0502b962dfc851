"""The HTTP/1.1 connection, with a deadline on every read from the client and on every
write it stops taking.

uvicorn's httptools protocol has neither: its keep-alive timer is armed only after a
response and cancelled by every byte received, so a client trickling its headers or body
holds a connection (and a task) for as long as it likes, and ASGI middleware cannot help
because it runs only once the headers are in. Its write flow control makes ``send`` wait
for as long as the client is not reading. This subclass arms the deadlines where the bytes
are read and written:

- headers: from the connection's start (or the next request's first byte) to the end of
  the headers, ``server.header_timeout_s``;
- body: from the end of the headers to the end of the body, ``server.body_timeout_s``;
- writes: while the transport's buffer is over its high-water mark, the client must take
  at least ``_MIN_PROGRESS_BYTES`` every ``server.write_idle_timeout_s``.

A missed read deadline is answered 408 and the connection closed; a stalled writer's
connection is aborted. Either way the application sees ``http.disconnect`` and records the
request as it records any disconnect.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from aperture.api.body import TIMED_OUT
from aperture.api.departure import Departure
from aperture.settings import ServerSettings

__all__ = ["DeadlineProtocol", "deadline_protocol"]

# What a slow reader must take per idle period: a byte a second is not reading.
_MIN_PROGRESS_BYTES = 64 * 1024

# Below this, the head and body are joined into one buffer; above, written as two.
_JOIN_BELOW = 64 * 1024

_EVENT_STREAM = b"\r\ncontent-type: text/event-stream"

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"Request Timeout\n"
)


def deadline_protocol(server: ServerSettings) -> type[DeadlineProtocol]:
    """The protocol class for uvicorn's ``http`` option, with ``server``'s deadlines."""

    class Bound(DeadlineProtocol):
        header_timeout_s = server.header_timeout_s
        body_timeout_s = server.body_timeout_s
        write_idle_timeout_s = server.write_idle_timeout_s

    return Bound


class _HeadWithBody:
    """The transport as one response writes to it: a head that announces a Content-Length
    waits for the body's first write and leaves with it, so a small answer is one write
    (one ``send``, one wake-up of the client) where uvicorn makes two.

    Such a head is held because its body write follows at once (an empty body is written as
    ``b""``). So do a stream's first events, which have arrived before its head is sent:
    an event-stream head waits for them too, but one loop turn at most (a filter may hold
    the first events back, and the client must not wait for the head). Any other chunked
    head, or ``100 Continue``, goes out as it comes.
    """

    __slots__ = ("_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) < _JOIN_BELOW:
                self._transport.write(held + data)
            else:  # no copy of a large body
                self._transport.writelines((held, data))
        elif data.startswith(b"HTTP/1.1 ") and b"\r\ncontent-length: " in data:
            self._held = data
        elif data.startswith(b"HTTP/1.1 ") and _EVENT_STREAM in data:
            self._held = data
            asyncio.get_running_loop().call_soon(self._release)
        else:
            self._transport.write(data)

    def _release(self) -> None:
        # The stream's head, if no event has taken it along by now.
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._held = None  # a head without its body is no answer
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class DeadlineProtocol(HttpToolsProtocol):
    header_timeout_s: ClassVar[float] = 10.0
    body_timeout_s: ClassVar[float] = 30.0
    write_idle_timeout_s: ClassVar[float] = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._begun = False  # a byte of the current request has arrived
        self._departure: Departure | None = None  # the current request's

    # Reads -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows BaseTransport
        super().connection_made(transport)
        # A connection that never sends a byte is held to the same deadline.
        self._arm_read(self.header_timeout_s, self._headers_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        if self._read_timer is None:  # the next request on a kept-alive connection
            self._arm_read(self.header_timeout_s, self._headers_late)

    def on_headers_complete(self) -> None:
        self._disarm_read()
        # In the scope before the application's task (started below) first runs.
        self._departure = Departure()
        self._departure.install(self.scope)  # type: ignore[arg-type]  # our own key
        super().on_headers_complete()
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is not None and self.scope["method"] != "HEAD":
            cycle.transport = _HeadWithBody(self.transport)  # type: ignore[assignment]
        # Cancelled by on_message_complete, in this same feed for a request without a body.
        self._arm_read(self.body_timeout_s, self._body_late)

    def on_body(self, body: bytes) -> None:
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is not None and cycle.response_complete and not self.transport.is_closing():
            # Answered (a 401, a 413) before the body ended: stop reading rather than
            # swallow the rest of a body nobody wants, however large.
            self._disarm_read()
            self.transport.close()
            return
        if (
            cycle is None
            or cycle.body
            or cycle.response_complete  # uvicorn drops what comes after the answer
            or (self.parser.should_upgrade() and self._should_upgrade())
        ):
            held: bytes | bytearray | None = cycle.body if cycle is not None else None
            if cycle is not None and type(held) is bytes:
                cycle.body = bytearray(held)  # a held chunk: appends stay amortised
            super().on_body(body)
            return
        # uvicorn appends every chunk to a bytearray and hands ``bytes(bytearray)`` to the
        # application: two copies of each chunk. The first chunk is held as it came, and
        # ``bytes()`` of a bytes object is that object: no copy while the application keeps
        # up (reading pauses above 64 KiB, so it nearly always does); a second chunk before
        # it reads turns the buffer back into a bytearray, as uvicorn had it.
        cycle.body = body  # type: ignore[assignment]  # read through bytes(), which takes both
        if len(body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        self._disarm_read()
        self._begun = False
        super().on_message_complete()

    def _headers_late(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if self._begun and not answering:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()

    def _body_late(self) -> None:
        self._read_timer = None
        cycle = self.cycle
        if self.transport.is_closing():
            return
        if cycle is not None and not cycle.response_started:
            # The application waits in receive(): it now gets http.disconnect, learns why
            # from the scope, and whatever it sends is dropped.
            cycle.scope[TIMED_OUT] = True  # type: ignore[literal-required]  # our own key
            cycle.disconnected = True
            cycle.message_event.set()
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()

    def _arm_read(self, delay: float, callback: Any) -> None:
        self._disarm_read()
        self._read_timer = self.loop.call_later(delay, callback)

    def _disarm_read(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    # Writes ----------------------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._arm_write()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._disarm_write()

    def _arm_write(self) -> None:
        waiting = self.transport.get_write_buffer_size()
        self._write_timer = self.loop.call_later(
            self.write_idle_timeout_s, self._write_idle, waiting
        )

    def _write_idle(self, waiting_then: int) -> None:
        self._write_timer = None
        if waiting_then - self.transport.get_write_buffer_size() >= _MIN_PROGRESS_BYTES:
            self._arm_write()  # slow, but reading: a long answer to a slow link
            return
        # Not close(): that would wait, forever, for the client to take the buffer.
        self.transport.abort()

    def _disarm_write(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read()
        self._disarm_write()
        super().connection_lost(exc)
        if self._departure is not None:
            self._departure.leave()
