"""Process-wide tuning applied once when a server starts."""

from __future__ import annotations

import ctypes
import gc
import sys

__all__ = ["freeze_heap", "tune_allocator"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_YOUNG_THRESHOLD = 20_000


def tune_allocator() -> bool:
    """Keep large freed buffers in the heap instead of returning them to the OS.

    glibc serves multi-megabyte allocations (a base64 image, its decoded bytes, the upstream
    body) with fresh mmap()s and unmaps them on free, so every request pays a page fault
    per 4 KiB again: measured here, two 5 MB copies took 7.0 ms before and 1.4 ms after.
    The cost is that the heap keeps its high-water mark. Returns whether it applied.

    The worker threads that check and hash images share one arena: each thread would
    otherwise get an arena of its own, each keeping its own high-water mark of such buffers
    (measured: +25 MB peak RSS sending 4 MB images one after another).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        # The process's own symbols, libc's among them: ``ctypes.util.find_library`` would
        # run ``ldconfig -p`` in a child process to find the same library (~7 ms of start).
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    applied = mallopt(_M_MMAP_THRESHOLD, 64 * 1024 * 1024)
    applied &= mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)
    applied &= mallopt(_M_ARENA_MAX, 2)  # the main thread's, and one for all the others
    return bool(applied)


def freeze_heap() -> None:
    """Exempt everything alive now (modules, settings, catalogs, pools) from the cyclic GC.

    Called once the server has started. A full collection otherwise walks every object the
    imports and the startup made, hundreds of thousands, pausing whichever requests are in
    flight; requests allocate and free their own objects, which stay collectable.

    Nothing is collected first, and the collector is turned back on (``aperture serve``
    pauses it for the start): the start leaves ~2,000 garbage objects, well under 1 MB,
    while a full collection of the ~90,000 it keeps costs 30-60 ms of the cold start.
    """
    gc.freeze()
    # A young collection runs each time 700 more tracked objects are alive than were: a
    # few times per small request, as its parse, pipeline and answer objects come and go,
    # each one walking every young object of every request in flight. Nearly all of them
    # are freed by their reference counts before 20,000 accumulate, so collections become
    # rare (measured: near a tenth of a small request's CPU went to them at 64 in flight), and
    # the few cycles a request leaves (an exception's traceback) wait a little longer.
    gc.set_threshold(_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    gc.enable()
