"""The ordered steps every request passes, on its way in and on its way back.

A stage is ``async (ctx, request) -> request``: it returns the (possibly rebuilt) request
or raises a ``GatewayError`` to reject it. A step may also have an after-step (``After``):
after-steps run in reverse order, on the answer or the stream before the client sees it,
and once the request is over, however it ended. The order in ``build_pipeline`` is the spec.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import anyio

from aperture.governance.guardrails import Guardrails
from aperture.governance.ocr import OcrReader
from aperture.governance.pii import PiiScanner
from aperture.governance.policy import PolicyEngine
from aperture.images.limits import TargetImageLimits, limits_for_provider
from aperture.model import Target
from aperture.pipeline.admit import Admission
from aperture.pipeline.answers import AnswerScreen
from aperture.pipeline.attempts import RequestAttempts
from aperture.pipeline.capabilities import CheckCapabilities
from aperture.pipeline.context import Attempt, Outcome, RequestContext
from aperture.pipeline.continuation import Continuation, ResponseArchive
from aperture.pipeline.document_prepare import DocumentPreparer
from aperture.pipeline.documents import IntakeDocuments, PdfWork
from aperture.pipeline.exchange import (
    AnswerStream,
    Dispatch,
    Exchange,
    Pipeline,
    StreamRenderer,
    TokenCount,
)
from aperture.pipeline.images import IntakeImages
from aperture.pipeline.normalize import ImagePreparer
from aperture.pipeline.record import Record
from aperture.pipeline.resolve import ResolveModel
from aperture.pipeline.screening import EnforcePolicy, PreCallGuardrails, ReadImages, ScreenPii
from aperture.pipeline.step import After, Stage, Step
from aperture.routing.live import LiveCatalog
from aperture.settings import DocumentSettings, ImageSettings, ProviderSettings
from aperture.settings.governance import PiiAction
from aperture.tracing import NO_TRACER, Tracer
from aperture.upstream.fetch import ImageFetcher

__all__ = [
    "After",
    "AnswerStream",
    "Attempt",
    "Continuation",
    "Dispatch",
    "DocumentPreparer",
    "Exchange",
    "ImagePreparer",
    "IntakeDocuments",
    "Outcome",
    "PdfWork",
    "Pipeline",
    "Record",
    "RequestAttempts",
    "RequestContext",
    "ResponseArchive",
    "Screening",
    "Stage",
    "Step",
    "StreamRenderer",
    "TargetLimits",
    "TokenCount",
    "build_pipeline",
]


@dataclass(frozen=True, slots=True)
class Screening:
    """The governance pieces the pipeline runs; None where nothing is configured."""

    policy: PolicyEngine | None = None
    ocr: OcrReader | None = None
    pii: PiiScanner | None = None
    pii_action: PiiAction = "redact"
    guardrails: Guardrails | None = None
    admission: Admission | None = None
    answers: AnswerScreen | None = None
    """The checks of the model's answer (PII in it, ``post`` guardrails)."""


class TargetLimits:
    """Image limits of a target's provider, computed once per provider."""

    def __init__(self, providers: Iterable[ProviderSettings]) -> None:
        self._by_provider = {p.name: limits_for_provider(p) for p in providers}

    def __call__(self, target: Target) -> TargetImageLimits:
        return self._by_provider[target.provider.name]


def build_pipeline(
    catalog: LiveCatalog,
    images: ImageSettings,
    fetcher: ImageFetcher,
    limiter: anyio.CapacityLimiter,
    target_limits: TargetLimits,
    dispatch: Dispatch,
    record: Record,
    screening: Screening | None = None,
    tracer: Tracer = NO_TRACER,
    documents: IntakeDocuments | None = None,
    continuation: Continuation | None = None,
    document_settings: DocumentSettings | None = None,
) -> Pipeline:
    """The steps of every request; per-target image preparation runs at each attempt.

    Governance steps that are not configured are left out, so they cost nothing.
    """
    gov = screening or Screening()
    steps: tuple[Step | None, ...] = (
        # Logs, audits and counts every request, even one refused before the first stage;
        # its end runs last, after the budget is settled.
        Step(after=record),
        Step(ResolveModel(catalog)),  # unknown or forbidden models fail before any work
        # A stored conversation joins the request before anything looks at its content; its
        # after-step keeps the answer once the request is over.
        Step(continuation, after=continuation) if continuation else None,
        Step(EnforcePolicy(gov.policy, after_intake=False)) if gov.policy else None,  # fetches
        # Keep the targets that can take the inputs (documents: natively, as pages or text).
        Step(CheckCapabilities(catalog, images, document_settings or DocumentSettings())),
        Step(IntakeImages(images, fetcher, limiter, target_limits, tracer)),  # decode, fetch
        Step(documents) if documents else None,  # PDFs: base64, %PDF-, bytes, pages, encryption
        Step(ReadImages(gov.ocr)) if gov.ocr else None,  # text inside images, for the checks
        Step(EnforcePolicy(gov.policy, after_intake=True)) if gov.policy else None,  # sizes, OCR
        Step(ScreenPii(gov.pii, gov.pii_action)) if gov.pii else None,  # block, or redact
        Step(PreCallGuardrails(gov.guardrails)) if gov.guardrails else None,
        # What a kept conversation keeps is what the provider may see: redacted, checked.
        Step(continuation.capture) if continuation else None,
        # Rate limits and budget holds, last: a refusal before costs no quota. Its after-step
        # settles what it took, however the request ends.
        Step(gov.admission, after=gov.admission) if gov.admission else None,
        # The first to see the answer on its way back (PII in it, post guardrails).
        Step(after=gov.answers) if gov.answers else None,
    )
    return Pipeline(tuple(step for step in steps if step is not None), dispatch)
