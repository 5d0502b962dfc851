"""What is recorded once a request is over, after the client has its answer.

Runs after the response (a background task) or in a stream's shielded ``finally``, so a
client that disconnects still gets its usage and audit recorded and no hashing or writing
ever delays an answer.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import anyio

from aperture.pipeline import RequestContext

__all__ = ["image_descriptors", "record"]

log = logging.getLogger("aperture.request")

# Hashing a few hundred kilobytes is cheaper than a hop to a worker thread.
_THREAD_HASH_BYTES = 256 * 1024


async def image_descriptors(ctx: RequestContext) -> list[dict[str, Any]]:
    """sha256, mime, size and source of every image, as the client sent it; never bytes."""
    descriptors = []
    for at, info in ctx.images.items():
        digest = ctx.image_hashes.get(at)
        if digest is None:
            data = ctx.decoded[at]
            if len(data) < _THREAD_HASH_BYTES:
                digest = hashlib.sha256(data).hexdigest()
            else:
                digest = await anyio.to_thread.run_sync(_sha256, data)
            ctx.image_hashes[at] = digest
        descriptors.append(
            {
                "sha256": digest,
                "mime": info.mime,
                "width": info.width,
                "height": info.height,
                "bytes": info.size_bytes,
                "frames": info.frames,
                "source": info.source,
            }
        )
    return descriptors


async def record(ctx: RequestContext, status: int, code: str | None) -> None:
    """Log the request's outcome: metadata only, never bodies, images or credentials."""
    latency_ms = round((time.perf_counter() - ctx.started) * 1000, 2)
    with anyio.CancelScope(shield=True):
        images = await image_descriptors(ctx)
        ctx.decoded.clear()
        log.info(
            "request",
            extra={
                "request_id": ctx.request_id,
                "endpoint": ctx.endpoint,
                "model": ctx.entry.name if ctx.entry else None,
                "provider": ctx.target.provider.name if ctx.target else None,
                "status": status,
                "error_code": code,
                "latency_ms": latency_ms,
                "images": images,
                "image_tokens_estimate": ctx.image_tokens if ctx.images else None,
                "image_tokens_reported": ctx.reported_image_tokens,
            },
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
