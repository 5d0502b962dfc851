"""What the gateway knows about one request as it moves through the stages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aperture.governance.budgets import Hold
from aperture.governance.keys import Principal
from aperture.governance.ratelimit import Ticket
from aperture.model import InlineImage, Target, Usage
from aperture.model.locator import FieldLocator, OpenAILocator
from aperture.routing.catalog import Resolution, TargetOption
from aperture.storage.records import AuditFinding

__all__ = ["RequestContext"]


@dataclass(slots=True)
class RequestContext:
    """Mutable per-request state, owned by the endpoint that serves the request."""

    request_id: str
    endpoint: str
    locator: FieldLocator = field(default_factory=OpenAILocator)
    principal: Principal = field(default_factory=Principal)
    started: float = field(default_factory=time.perf_counter)
    resolution: Resolution | None = None
    options: tuple[TargetOption, ...] = ()
    """The targets able to serve this request, before the strategy orders them."""
    target: Target | None = None
    """The target of the current (or last) attempt."""
    attempts: int = 0
    usage: Usage | None = None
    upstream_s: float = 0.0
    """Time spent waiting on providers, to tell the gateway's own overhead apart."""
    texts: tuple[str, ...] = ()
    """The request's text portions, for the audit trail."""
    decoded: dict[tuple[int, int], bytes] = field(default_factory=dict)
    """Decoded image bytes by (message, part), for normalisation; dropped with the request."""
    images: dict[tuple[int, int], InlineImage] = field(default_factory=dict)
    """What intake found for each image, as the client sent it: the audit's descriptors."""
    image_hashes: dict[tuple[int, int], str] = field(default_factory=dict)
    """sha256 of the images' bytes, computed when first needed (never on the hot path)."""
    image_changes: list[str] = field(default_factory=list)
    image_tokens: int = 0
    """The estimated input tokens of the images as they were sent to the target."""
    reported_image_tokens: int | None = None
    """What the provider said the images cost, when it says (to compare with the estimate)."""
    prompt_estimate: int = 0
    """Estimated input tokens (text and images), what a request cut short is charged."""
    hold: Hold | None = None
    """The budget reservation to settle when the request ends."""
    ticket: Ticket | None = None
    """The rate-limit windows the request was counted in, to correct its tokens at the end."""
    streamed_chars: int = 0
    """Characters of answer text relayed so far (a disconnected stream's output estimate)."""
    findings: list[AuditFinding] = field(default_factory=list)
    """What policy, PII and guardrails found (never the matched values)."""
    image_texts: dict[tuple[int, int], str] = field(default_factory=dict)
    """Text OCR read from each image, when ``governance.ocr`` is on (scanned, never stored)."""
