"""The ordered stages every request passes before it is dispatched.

A stage is ``async (ctx, request) -> request``: it returns the (possibly rebuilt) request
or raises a ``GatewayError`` to reject it. The order in ``build_pipeline`` is the spec.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import anyio

from aperture.governance.guardrails import Guardrails
from aperture.governance.ocr import OcrReader
from aperture.governance.pii import PiiScanner
from aperture.governance.policy import PolicyEngine
from aperture.images.limits import TargetImageLimits, limits_for_provider
from aperture.model import ChatRequest, Target
from aperture.pipeline.admit import Admission
from aperture.pipeline.attempts import RequestAttempts
from aperture.pipeline.capabilities import CheckCapabilities
from aperture.pipeline.context import RequestContext
from aperture.pipeline.images import IntakeImages
from aperture.pipeline.normalize import ImagePreparer
from aperture.pipeline.resolve import ResolveModel
from aperture.pipeline.screening import EnforcePolicy, PreCallGuardrails, ReadImages, ScreenPii
from aperture.routing.live import LiveCatalog
from aperture.settings import ImageSettings, ProviderSettings
from aperture.settings.governance import PiiAction
from aperture.tracing import NO_TRACER, Tracer
from aperture.upstream.fetch import ImageFetcher

__all__ = [
    "ImagePreparer",
    "Pipeline",
    "RequestAttempts",
    "RequestContext",
    "Screening",
    "Stage",
    "TargetLimits",
    "build_pipeline",
]

Stage = Callable[[RequestContext, ChatRequest], Awaitable[ChatRequest]]


class Pipeline:
    def __init__(self, stages: tuple[Stage, ...]) -> None:
        self.stages = stages

    async def run(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        for stage in self.stages:
            request = await stage(ctx, request)
        return request


@dataclass(frozen=True, slots=True)
class Screening:
    """The governance pieces the pipeline runs; None where nothing is configured."""

    policy: PolicyEngine | None = None
    ocr: OcrReader | None = None
    pii: PiiScanner | None = None
    pii_action: PiiAction = "redact"
    guardrails: Guardrails | None = None
    admission: Admission | None = None


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
    screening: Screening | None = None,
    tracer: Tracer = NO_TRACER,
) -> Pipeline:
    """The stages before dispatch; per-target image preparation runs at each attempt.

    Governance stages that are not configured are left out, so they cost nothing.
    """
    gov = screening or Screening()
    stages: tuple[Stage | None, ...] = (
        ResolveModel(catalog),  # unknown or forbidden models fail before any work
        EnforcePolicy(gov.policy, after_intake=False) if gov.policy else None,  # before fetches
        CheckCapabilities(catalog, images),  # keep targets that can take the inputs
        IntakeImages(images, fetcher, limiter, target_limits, tracer),  # decode, sniff, fetch
        ReadImages(gov.ocr) if gov.ocr else None,  # text inside images, for the checks below
        EnforcePolicy(gov.policy, after_intake=True) if gov.policy else None,  # sizes, OCR
        ScreenPii(gov.pii, gov.pii_action) if gov.pii else None,  # block, or redact the text
        PreCallGuardrails(gov.guardrails) if gov.guardrails else None,
        gov.admission,  # rate limits and budget holds, last: a refusal before costs no quota
    )
    return Pipeline(tuple(stage for stage in stages if stage is not None))
