"""After-step: what is recorded once a request is over, after the client has its answer.

The first step of the pipeline, so its end runs last, for every request (even one refused
before the first stage) and after the budget is settled. Ends run after the response (a
background task) or when a stream closes, shielded, so a client that disconnects still gets
its usage and audit recorded and no hashing or writing ever delays an answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

import pybase64

from aperture.metrics import Metrics
from aperture.model import ChatRequest, GeneratedImage, Text
from aperture.pipeline.context import Attempt, Outcome, RequestContext
from aperture.pipeline.step import After
from aperture.storage import AuditDocument, AuditEvent, AuditImage, AuditUsage
from aperture.storage.audit_writer import AuditWriter
from aperture.storage.records import AuditAttempt, AuditClock, AuditGeneratedImage

__all__ = ["Record", "image_descriptors", "text_portions"]

log = logging.getLogger("aperture.request")

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
    digests = await ctx.image_digests()
    for at, info in ctx.images.items():
        descriptors.append(
            {
                "sha256": digests[at],
                "mime": info.mime,
                "width": info.width,
                "height": info.height,
                "bytes": info.size_bytes,
                "frames": info.frames,
                "source": info.source,
            }
        )
    return descriptors


def document_descriptors(ctx: RequestContext) -> tuple[AuditDocument, ...]:
    """sha256, type, size, pages and name of every inline document; never bytes or text."""
    return tuple(
        AuditDocument(
            sha256=document.info.sha256,
            mime=document.info.mime,
            bytes=document.info.size_bytes,
            pages=document.info.pages,
            filename=document.filename,
        )
        for document in ctx.documents.values()
    )


async def generated_descriptors(attempt: Attempt) -> list[dict[str, Any]]:
    """sha256, type and size of every image the answer carried; hashed off the event loop."""
    if not attempt.generated:
        return []
    return await asyncio.to_thread(_describe_generated, attempt.generated)


def _describe_generated(images: tuple[GeneratedImage, ...]) -> list[dict[str, Any]]:
    out = []
    for image in images:
        data = pybase64.b64decode(image.data)
        out.append(
            {"sha256": hashlib.sha256(data).hexdigest(), "mime": image.mime, "bytes": len(data)}
        )
    return out


class Record(After):
    """Log, audit and count each request's outcome: metadata only, never bytes or secrets."""

    def __init__(self, audit: AuditWriter | None = None, metrics: Metrics | None = None) -> None:
        self._audit = audit
        self._metrics = metrics
        self._now = AuditClock()

    async def end(self, ctx: RequestContext, outcome: Outcome) -> None:
        elapsed_s = time.perf_counter() - ctx.started
        latency_ms = round(elapsed_s * 1000, 2)
        images = await image_descriptors(ctx) if ctx.images else []
        generated = await generated_descriptors(outcome.attempt)
        if self._audit is not None:
            event = _audit_event(ctx, outcome, self._now(), latency_ms, images, generated)
            self._audit.submit(event)
        if self._metrics is not None:
            _count(self._metrics, ctx, outcome, elapsed_s)
        if not log.isEnabledFor(logging.INFO):
            return  # not even the fields: they are built once per request for nothing
        attempt = outcome.attempt
        log.info(
            "request",
            extra={
                "request_id": ctx.request_id,
                "endpoint": ctx.endpoint,
                "model": ctx.resolution.name if ctx.resolution else None,
                "provider": attempt.target.provider.name if attempt.target else None,
                "status": outcome.status,
                "error_code": outcome.code,
                "latency_ms": latency_ms,
                "images": images,
                "generated_images": generated or None,
                "image_tokens_estimate": attempt.image_tokens if ctx.images else None,
                "image_tokens_reported": attempt.reported_image_tokens,
                "documents": [d.info.sha256 for d in ctx.documents.values()] or None,
                "document_tokens_estimate": attempt.document_tokens if ctx.documents else None,
            },
        )


def _count(metrics: Metrics, ctx: RequestContext, outcome: Outcome, elapsed_s: float) -> None:
    model = ctx.resolution.name if ctx.resolution else ""
    attempt, status, code = outcome.attempt, outcome.status, outcome.code
    overhead_s = max(0.0, elapsed_s - attempt.upstream_s)
    metrics.request(ctx.endpoint, model, status, elapsed_s, overhead_s)
    if code is not None and status != 499:
        metrics.rejection(code)
    if attempt.usage is not None:
        metrics.count_tokens(model, "prompt", attempt.usage.prompt_tokens)
        metrics.count_tokens(model, "completion", attempt.usage.completion_tokens)
    if ctx.images:
        metrics.count_tokens(model, "image_estimate", attempt.image_tokens)
        for info in ctx.images.values():
            metrics.image(info.mime, info.size_bytes)
        metrics.image_bytes_saved(attempt.image_bytes_saved)


def _audit_event(
    ctx: RequestContext,
    outcome: Outcome,
    now: str,
    latency_ms: float,
    images: list[dict[str, Any]],
    generated: list[dict[str, Any]],
) -> AuditEvent:
    attempt = outcome.attempt
    usage, target = attempt.usage, attempt.target
    return AuditEvent(
        request_id=ctx.request_id,
        time=now,
        key_id=ctx.principal.key_id,
        tenant=ctx.principal.tenant,
        endpoint=ctx.endpoint,
        model=ctx.resolution.name if ctx.resolution else None,
        provider=target.provider.name if target else None,
        upstream_model=target.upstream_model if target else None,
        attempts=attempt.attempts,
        status=outcome.status,
        error_code=outcome.code,
        usage=AuditUsage(
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            image_tokens_estimate=attempt.image_tokens if ctx.images else None,
            image_tokens_reported=attempt.reported_image_tokens,
            document_tokens_estimate=attempt.document_tokens if ctx.documents else None,
        ),
        latency_ms=latency_ms,
        text=ctx.texts,
        # Most requests have no images nor documents: no generator made for nothing.
        images=tuple([AuditImage(**image) for image in images]) if images else (),
        generated_images=(
            tuple([AuditGeneratedImage(**image) for image in generated]) if generated else ()
        ),
        documents=document_descriptors(ctx) if ctx.documents else (),
        findings=tuple(ctx.findings),
        route=ctx.resolution.route_id if ctx.resolution else None,
        tried=tuple(
            [
                AuditAttempt(
                    target=t.target, outcome=t.outcome, latency_ms=round(t.seconds * 1000, 2)
                )
                for t in attempt.tried
            ]
        ),
        image_changes=attempt.image_changes,
        image_bytes_saved=attempt.image_bytes_saved,
    )
