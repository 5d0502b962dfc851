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

from aperture.metrics import Metrics
from aperture.model import ChatRequest, Text
from aperture.pipeline import RequestContext
from aperture.pipeline.admit import Admission
from aperture.storage import AuditEvent, AuditImage, AuditUsage, audit_time
from aperture.storage.audit_writer import AuditWriter

__all__ = ["image_descriptors", "record", "text_portions"]

log = logging.getLogger("aperture.request")

# Hashing a few hundred kilobytes is cheaper than a hop to a worker thread.
_THREAD_HASH_BYTES = 256 * 1024
# The audit keeps text, not documents: a bound on what one event may hold.
_MAX_TEXT_CHARS = 64 * 1024


def text_portions(request: ChatRequest) -> tuple[str, ...]:
    """The text of every message, in order, capped in total size; never image data."""
    texts: list[str] = []
    budget = _MAX_TEXT_CHARS
    for message in request.messages:
        for part in message.parts():
            if isinstance(part, Text) and budget > 0:
                texts.append(part.text[:budget])
                budget -= len(texts[-1])
    return tuple(texts)


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


async def record(
    ctx: RequestContext,
    status: int,
    code: str | None,
    audit: AuditWriter | None = None,
    metrics: Metrics | None = None,
    admission: Admission | None = None,
) -> None:
    """Settle, log, audit and count the request's outcome: metadata only, never bytes or
    secrets."""
    elapsed_s = time.perf_counter() - ctx.started
    latency_ms = round(elapsed_s * 1000, 2)
    with anyio.CancelScope(shield=True):
        if admission is not None and (ctx.hold is not None or ctx.ticket is not None):
            await admission.settle(ctx, cut=status == 499)
        images = await image_descriptors(ctx)
        ctx.decoded.clear()
        if audit is not None:
            audit.submit(_audit_event(ctx, status, code, latency_ms, images))
        if metrics is not None:
            _count(metrics, ctx, status, code, elapsed_s)
        if not log.isEnabledFor(logging.INFO):
            return  # not even the fields: they are built once per request for nothing
        log.info(
            "request",
            extra={
                "request_id": ctx.request_id,
                "endpoint": ctx.endpoint,
                "model": ctx.resolution.name if ctx.resolution else None,
                "provider": ctx.target.provider.name if ctx.target else None,
                "status": status,
                "error_code": code,
                "latency_ms": latency_ms,
                "images": images,
                "image_tokens_estimate": ctx.image_tokens if ctx.images else None,
                "image_tokens_reported": ctx.reported_image_tokens,
            },
        )


def _count(
    metrics: Metrics, ctx: RequestContext, status: int, code: str | None, elapsed_s: float
) -> None:
    model = ctx.resolution.name if ctx.resolution else ""
    metrics.request(ctx.endpoint, model, status, elapsed_s, max(0.0, elapsed_s - ctx.upstream_s))
    if code is not None and status != 499:
        metrics.rejection(code)
    if ctx.usage is not None:
        metrics.count_tokens(model, "prompt", ctx.usage.prompt_tokens)
        metrics.count_tokens(model, "completion", ctx.usage.completion_tokens)
    if ctx.images:
        metrics.count_tokens(model, "image_estimate", ctx.image_tokens)
        for info in ctx.images.values():
            metrics.image(info.mime, info.size_bytes)


def _audit_event(
    ctx: RequestContext,
    status: int,
    code: str | None,
    latency_ms: float,
    images: list[dict[str, Any]],
) -> AuditEvent:
    usage = ctx.usage
    return AuditEvent(
        request_id=ctx.request_id,
        time=audit_time(),
        key_id=ctx.principal.key_id,
        tenant=ctx.principal.tenant,
        endpoint=ctx.endpoint,
        model=ctx.resolution.name if ctx.resolution else None,
        provider=ctx.target.provider.name if ctx.target else None,
        upstream_model=ctx.target.upstream_model if ctx.target else None,
        attempts=ctx.attempts,
        status=status,
        error_code=code,
        usage=AuditUsage(
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            image_tokens_estimate=ctx.image_tokens if ctx.images else None,
            image_tokens_reported=ctx.reported_image_tokens,
        ),
        latency_ms=latency_ms,
        text=ctx.texts,
        images=tuple(AuditImage(**image) for image in images),
        findings=tuple(ctx.findings),
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
