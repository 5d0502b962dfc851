"""Several worker processes serving the same ports: ``aperture serve --workers N``.

The parent binds, before forking, one listening socket per worker and port, all with
``SO_REUSEPORT``. The kernel then spreads new connections evenly across the workers' sockets
(one shared socket lets whichever worker wakes first take most of them), a port already in
use fails before any worker starts, and port 0 resolves once for all. Each worker keeps its
own sockets and closes the others'; the parent closes all of its copies once the workers
run, so a worker that dies takes its sockets with it and the kernel stops routing to them.

Every worker serves both the public and the admin port and builds its own apps, storage
pools, HTTP clients and tracer after the fork: no thread or connection crosses it. Workers
share what the storage shares (see the README's "Several workers and several instances").

The parent only supervises. SIGINT or SIGTERM is passed to every worker as SIGTERM, a
graceful stop (workers ignore SIGINT, so a Ctrl-C in a terminal, which signals the whole
process group, still stops them once and in order); a second signal, or a worker still
running ``stop_timeout_s`` later, gets SIGKILL. A worker that exits on its own, at start or
later, stops the others and the parent exits 1: the process manager restarts the whole
gateway rather than leaving it running at part strength.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

__all__ = ["bind_listeners", "run_workers"]

log = logging.getLogger("aperture.workers")

Listeners = list[socket.socket]
"""One worker's listening sockets, one per port, in the order the ports were given."""
Serve = Callable[[int, Listeners], int]
"""What a worker runs after the fork: (its index, its sockets) -> its exit code."""

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def bind_listeners(
    host: str, ports: Sequence[int], workers: int, *, backlog: int = 2048
) -> list[Listeners]:
    """For each worker, a listening socket on each of ``ports``, all with ``SO_REUSEPORT``.

    Raises:
        OSError: the platform has no ``SO_REUSEPORT`` or ``fork``, or a port is taken.
    """
    if not hasattr(socket, "SO_REUSEPORT") or "fork" not in multiprocessing.get_all_start_methods():
        raise OSError("--workers needs SO_REUSEPORT and fork (Linux); run one worker here")
    family, _, _, _, address = socket.getaddrinfo(
        host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listeners: list[Listeners] = [[] for _ in range(workers)]
    try:
        for wanted in ports:
            port = wanted
            for own in listeners:
                sock = socket.socket(family, socket.SOCK_STREAM)
                own.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                try:
                    sock.bind((address[0], port, *address[2:]))
                except OSError as exc:
                    raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
                port = sock.getsockname()[1]  # port 0: the first bind picks it for all
                sock.listen(backlog)
    except BaseException:
        for own in listeners:
            for sock in own:
                sock.close()
        raise
    return listeners


def run_workers(listeners: list[Listeners], serve: Serve, *, stop_timeout_s: float = 20) -> int:
    """Fork one worker per entry of ``listeners``, supervise them until they stop, and
    return the parent's exit code: 0 after a requested stop, 1 if a worker died."""
    context = multiprocessing.get_context("fork")
    # Blocked across the forks: a signal now would find the workers half-made. Each side
    # installs its own handlers, then unblocks; a signal that came meanwhile is delivered.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    workers: list[BaseProcess] = []
    try:
        for index in range(len(listeners)):
            others = [s for i, own in enumerate(listeners) if i != index for s in own]
            worker = context.Process(
                target=_worker,
                args=(serve, index, listeners[index], others),
                name=f"aperture-worker-{index}",
            )
            worker.start()
            workers.append(worker)
    finally:
        for own in listeners:
            for sock in own:
                sock.close()
    log.info("%d workers started: pids %s", len(workers), [w.pid for w in workers])
    return _supervise(workers, stop_timeout_s)


def _worker(serve: Serve, index: int, own: Listeners, others: Listeners) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    for sock in others:
        sock.close()
    sys.exit(serve(index, own))


def _supervise(workers: list[BaseProcess], stop_timeout_s: float) -> int:
    received: list[int] = []
    wake_read, wake_write = socket.socketpair()
    wake_read.setblocking(False)
    wake_write.setblocking(False)
    # The wakeup fd ends the wait below as soon as a signal arrives.
    previous_fd = signal.set_wakeup_fd(wake_write.fileno())
    previous = {
        s: signal.signal(s, lambda signum, _: received.append(signum)) for s in _STOP_SIGNALS
    }
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    try:
        return _watch(workers, received, wake_read, stop_timeout_s)
    finally:
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        wake_read.close()
        wake_write.close()


def _watch(
    workers: list[BaseProcess], received: list[int], wake: socket.socket, stop_timeout_s: float
) -> int:
    alive = list(workers)
    stopping_since: float | None = None
    killed = False
    failed = False
    while alive:
        timeout = None
        if stopping_since is not None and not killed:
            timeout = max(0.0, stopping_since + stop_timeout_s - time.monotonic())
        wait([w.sentinel for w in alive] + [wake], timeout)
        _drain(wake)
        if received:
            if stopping_since is None:
                log.info("stopping %d workers", len(alive))
                stopping_since = _signal_all(alive, signal.SIGTERM)
            else:
                _signal_all(alive, signal.SIGKILL)  # asked twice: stop now
                killed = True
            received.clear()
        for worker in [w for w in alive if w.exitcode is not None]:
            alive.remove(worker)
            if stopping_since is None:
                log.error(
                    "worker %s (pid %s) exited with code %s; stopping the others",
                    worker.name,
                    worker.pid,
                    worker.exitcode,
                )
                failed = True
                stopping_since = _signal_all(alive, signal.SIGTERM)
        overdue = stopping_since is not None and time.monotonic() >= stopping_since + stop_timeout_s
        if overdue and alive and not killed:
            log.error("%d workers still running after %s s: killed", len(alive), stop_timeout_s)
            _signal_all(alive, signal.SIGKILL)
            killed = failed = True
    for worker in workers:
        worker.join()
    return 1 if failed else 0


def _signal_all(workers: list[BaseProcess], signum: int) -> float:
    for worker in workers:
        if worker.pid is not None and worker.exitcode is None:
            # It may exit in between: the next wait sees it.
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signum)
    return time.monotonic()


def _drain(wake: socket.socket) -> None:
    try:
        while wake.recv(64):
            pass
    except BlockingIOError:
        pass
