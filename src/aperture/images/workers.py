"""Image decoding in child processes, each under a ceiling on memory and CPU time.

Decoding is where an image's size turns into memory: a PNG just under the pixel limit
needs several hundred MB however it is decoded with Pillow, a crafted one more, and a
decoder bug can crash or spin. In a child with ``RLIMIT_DATA`` (``RLIMIT_AS`` where Linux's
data limit is missing) and ``RLIMIT_CPU``, the worst an image can do is fail its own job:
the gateway, and the other requests' jobs, each on a worker of their own, carry on.

Workers are plain interpreters (``python -m aperture.images.workers``) talking pickles over
a socket pair: nothing of the server's state, threads or event loop is forked into them.
"""

from __future__ import annotations

import importlib
import math
import os
import pickle
import resource
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Literal, TypeVar

import anyio

__all__ = ["DecodeFailed", "DecodePool", "chain"]

T = TypeVar("T")

Failure = Literal["memory", "cpu", "crashed", "error"]
_MB = 1024 * 1024
# The data limit counts heap and anonymous mappings, not shared libraries: the better
# measure of what decoding allocates. Linux has had it since 4.7.
_LIMIT = getattr(resource, "RLIMIT_DATA", resource.RLIMIT_AS)
_START_TIMEOUT_S = 30.0


def chain(
    first: Callable[..., object],
    first_args: tuple[object, ...],
    then: Callable[..., T],
    then_args: tuple[object, ...],
) -> T:
    """``then(first(*first_args), *then_args)``: two packages' steps as one job, so what
    passes between them (a generator of bitmaps, say) never leaves the worker."""
    return then(first(*first_args), *then_args)


class DecodeFailed(Exception):
    """A job did not finish: what stopped it, in words for the client."""

    def __init__(self, kind: Failure, detail: str) -> None:
        super().__init__(detail)
        self.kind: Failure = kind
        self.detail = detail


class _Worker:
    def __init__(self, memory_bytes: int, cpu_s: int) -> None:
        parent, child = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aperture.images.workers",
                    str(child.fileno()),
                    str(memory_bytes),
                    str(cpu_s),
                ],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            child.close()
        self.conn = Connection(parent.detach())
        self.jobs = 0

    def call(self, fn: Callable[..., object], args: tuple[object, ...]) -> tuple[str, object]:
        """Run one job; blocks until the worker answers or dies."""
        self.jobs += 1
        try:
            self.conn.send((fn, args))
            reply: tuple[str, object] = self.conn.recv()
        except (EOFError, OSError):
            return "died", self._exit_code()
        return reply

    def _exit_code(self) -> int:
        try:
            return self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.conn.close()

    def stop(self) -> None:
        """Ask an idle worker to leave (it exits when its socket closes), then make sure."""
        self.conn.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()


class DecodePool:
    """At most ``workers`` jobs at once, each in a child limited to ``memory_mb`` and ``cpu_s``.

    A worker is reused for up to ``jobs_per_worker`` jobs (freed memory is not always given
    back), and replaced after any job that ran out of memory or died.
    """

    def __init__(
        self, *, workers: int, memory_mb: int, cpu_s: int, jobs_per_worker: int = 200
    ) -> None:
        self.memory_mb = memory_mb
        self.cpu_s = cpu_s
        self._slots = anyio.Semaphore(max(1, workers))
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._lock = threading.Lock()
        self._jobs_per_worker = jobs_per_worker
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in a worker; ``fn`` and its arguments must pickle.

        Raises:
            DecodeFailed: out of memory, out of CPU time, the worker died, or ``fn`` raised.
        """
        async with self._slots:
            worker = await anyio.to_thread.run_sync(self._take)
            try:
                status, value = await anyio.to_thread.run_sync(
                    worker.call, fn, args, abandon_on_cancel=True
                )
            except BaseException:
                # Cancelled (the client left, a deadline passed): stop the work, not just the wait.
                self._discard(worker)
                raise
            if status == "ok":
                self._give_back(worker)
                return value  # type: ignore[return-value]  # what fn returned, unpickled
            self._discard(worker)
            raise self._failure(status, value)

    def _failure(self, status: str, value: object) -> DecodeFailed:
        if status == "memory":
            return DecodeFailed("memory", f"more than {self.memory_mb} MB")
        if status == "error":
            return DecodeFailed("error", str(value))
        code = value if isinstance(value, int) else 0
        if code == -signal.SIGXCPU:
            return DecodeFailed("cpu", f"more than {self.cpu_s} s of CPU time")
        return DecodeFailed("crashed", f"the decoder stopped (exit status {code})")

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("the decode pool is closed")
            while self._idle:
                worker = self._idle.pop()
                if worker.process.poll() is None:
                    self._busy.add(worker)
                    return worker
                worker.kill()
        worker = _Worker(self.memory_mb * _MB, self.cpu_s)
        with self._lock:
            self._busy.add(worker)
        return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if not self._closed and worker.jobs < self._jobs_per_worker:
                self._idle.append(worker)
                return
        worker.stop()

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
        worker.kill()

    def close(self) -> None:
        """Stop every worker; jobs still running fail as ``crashed``."""
        with self._lock:
            self._closed = True
            idle, busy = self._idle, list(self._busy)
            self._idle = []
        for worker in idle:
            worker.stop()
        for worker in busy:
            worker.kill()


def _serve(conn: Connection, memory_bytes: int, cpu_s: int) -> None:
    """The worker's loop: limits first, then one job at a time until the socket closes."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind
    _, hard = resource.getrlimit(_LIMIT)
    if hard == resource.RLIM_INFINITY or memory_bytes < hard:
        resource.setrlimit(_LIMIT, (memory_bytes, memory_bytes))
    # Imported before the first job so that it does not count against the job's CPU time.
    importlib.import_module("aperture.images._pillow")
    importlib.import_module("aperture.images.normalize")
    importlib.import_module("aperture.images.grayscale")
    importlib.import_module("aperture.images.rendered")

    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    while True:
        try:
            job = conn.recv_bytes()
        except (EOFError, OSError):
            return
        # RLIMIT_CPU counts the whole process: each job gets cpu_s more than used so far.
        used = resource.getrusage(resource.RUSAGE_SELF)
        ceiling = math.ceil(used.ru_utime + used.ru_stime + cpu_s)
        if cpu_hard == resource.RLIM_INFINITY or ceiling < cpu_hard:
            resource.setrlimit(resource.RLIMIT_CPU, (ceiling, cpu_hard))
        try:
            fn, args = pickle.loads(job)
            reply: tuple[str, object] = ("ok", fn(*args))
        except MemoryError:
            reply = ("memory", "")
        # Decoders report bad data with many exception types; the parent maps them all.
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("memory", ""))


if __name__ == "__main__":
    fd, memory, cpu = (int(value) for value in sys.argv[1:4])
    try:
        _serve(Connection(fd), memory, cpu)
    finally:
        os._exit(0)
