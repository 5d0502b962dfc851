"""What the gateway knows about one request: before dispatch, and once it is over.

``RequestContext`` holds what is known before dispatch: who asks (the endpoint), which model
and targets (``ResolveModel``, ``CheckCapabilities``), what the images are (intake), what the
checks found, what admission took. What the attempts produce (the target, how many attempts,
the usage, the image changes) is never written into it: the router and the exchange return
it, and the after-steps receive it as one frozen ``Outcome``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import anyio

from aperture.governance.budgets import Hold
from aperture.governance.keys import Principal
from aperture.governance.ratelimit import Ticket
from aperture.model import GeneratedImage, InlineImage, Target, Usage
from aperture.model.locator import FieldLocator, OpenAILocator
from aperture.routing.catalog import Resolution, TargetOption
from aperture.storage.records import AuditFinding

__all__ = ["Attempt", "Outcome", "RequestContext"]

# Hashing a few hundred kilobytes is cheaper than a hop to a worker thread.
_THREAD_HASH_BYTES = 256 * 1024


@dataclass(slots=True)
class RequestContext:
    """Per-request state known before dispatch, owned by the request's exchange.

    Each field says who writes it; everyone else only reads.
    """

    request_id: str
    endpoint: str
    locator: FieldLocator = field(default_factory=OpenAILocator)
    """Written by the exchange, from the dialect's parse."""
    principal: Principal = field(default_factory=Principal)
    """Written by the endpoint, once the key is checked."""
    started: float = field(default_factory=time.perf_counter)
    counting: bool = False
    """A token count, not a call: admitted without rate limits or budget holds, as it costs
    nothing. Written by the exchange."""
    resolution: Resolution | None = None
    """Written by ``ResolveModel``."""
    options: tuple[TargetOption, ...] = ()
    """The targets able to serve this request, before the strategy orders them: written by
    ``ResolveModel``, narrowed by ``CheckCapabilities``."""
    texts: tuple[str, ...] = ()
    """The request's text portions, for the audit trail: written by the exchange, redacted
    by ``ScreenPii``."""
    decoded: dict[tuple[int, int], bytes] = field(default_factory=dict)
    """Decoded image bytes by (message, part), for normalisation: written by
    ``IntakeImages``, dropped by ``Record`` with the request."""
    images: dict[tuple[int, int], InlineImage] = field(default_factory=dict)
    """What intake found for each image, as the client sent it, the audit's descriptors:
    written by ``IntakeImages``."""
    image_hashes: dict[tuple[int, int], str] = field(default_factory=dict)
    """sha256 of the images' bytes, computed when first needed (never on the hot path):
    filled by ``image_digest`` alone."""
    prompt_estimate: int = 0
    """Estimated input tokens (text and images), what a request cut short is charged:
    written by ``Admission``."""
    hold: Hold | None = None
    """The budget reservation to settle when the request ends: taken and settled by
    ``Admission``."""
    ticket: Ticket | None = None
    """The rate-limit windows the request was counted in, to correct its tokens at the end:
    taken and corrected by ``Admission``."""
    findings: list[AuditFinding] = field(default_factory=list)
    """What policy, PII and guardrails found (never the matched values): appended to by the
    checks, before dispatch and on the answer."""
    image_texts: dict[tuple[int, int], str] = field(default_factory=dict)
    """Text OCR read from each image, when ``governance.ocr`` is on (scanned, never stored):
    written by ``ReadImages``."""

    async def image_digest(
        self, at: tuple[int, int], limiter: anyio.CapacityLimiter | None = None
    ) -> str:
        """sha256 of the bytes of the image at ``at``, computed once, in a worker thread
        (bounded by ``limiter``) when it is large: hashlib releases the GIL."""
        digest = self.image_hashes.get(at)
        if digest is None:
            data = self.decoded[at]
            if len(data) < _THREAD_HASH_BYTES:
                digest = _sha256(data)
            else:
                digest = await anyio.to_thread.run_sync(_sha256, data, limiter=limiter)
            self.image_hashes[at] = digest
        return digest


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the request's attempts produced: nothing, for one refused before dispatch."""

    target: Target | None = None
    """The target of the current (or last) attempt."""
    attempts: int = 0
    upstream_s: float = 0.0
    """Time spent waiting on providers, to tell the gateway's own overhead apart."""
    image_tokens: int = 0
    """The estimated input tokens of the images as they were sent to the target."""
    image_changes: tuple[str, ...] = ()
    """What normalisation did to the images, over every attempt."""
    usage: Usage | None = None
    reported_image_tokens: int | None = None
    """What the provider said the images cost, when it says (to compare with the estimate)."""
    generated: tuple[GeneratedImage, ...] = ()
    """The images the answer carried, described (never stored) by the audit."""
    streamed_chars: int = 0
    """Characters of answer text relayed so far (a disconnected stream's output estimate)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a request ended, as its after-steps see it."""

    status: int
    code: str | None = None
    """The error code, None for an answer."""
    attempt: Attempt = field(default_factory=Attempt)

    @property
    def cut(self) -> bool:
        """The client left (or the request was cancelled), perhaps with an attempt under way."""
        return self.status == 499


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
