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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import anyio
import msgspec

from aperture.governance.budgets import Hold
from aperture.governance.keys import Principal
from aperture.governance.ratelimit import Ticket
from aperture.media.payloads import Payloads
from aperture.model import (
    ChatRequest,
    ChatResponse,
    GeneratedImage,
    InlineDocument,
    InlineImage,
    Message,
    Target,
    Usage,
)
from aperture.model.locator import FieldLocator, OpenAILocator
from aperture.routing.catalog import Resolution, TargetOption
from aperture.storage.records import AuditFinding

__all__ = [
    "Attempt",
    "CheckedDocument",
    "Conversation",
    "Outcome",
    "RequestContext",
    "Try",
    "UpstreamTap",
]

# Hashing a few hundred kilobytes is cheaper than a hop to a worker thread.
_THREAD_HASH_BYTES = 256 * 1024


@dataclass(slots=True, kw_only=True)
class Conversation:
    """A Responses API turn the gateway keeps or continues: written by ``Continuation``."""

    response_id: str
    """The id the answer carries, and is kept under."""
    owner: str
    """Who may continue it (the key's tenant, else the key)."""
    store: bool
    prior: tuple[Message, ...] = ()
    """The conversation continued, as stored (images as references to their blobs)."""
    start: int = 0
    """Where the new input begins in the request's messages."""
    new: tuple[Message, ...] = ()
    """The new input turns, as the client sent them."""
    answer: ChatResponse | None = None
    """The answer as the client got it, once it is whole."""


UpstreamTap = Callable[[ChatRequest, Target], None]
"""Shown each attempt's request as prepared for its target (the console's playground)."""


class CheckedDocument(NamedTuple):
    """A document intake has read: its descriptor, bytes, page boxes and given name."""

    info: InlineDocument
    data: bytes
    sizes: tuple[tuple[float, float], ...]
    """Each page's width and height in points."""
    filename: str | None


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
    payloads: Payloads = field(default_factory=Payloads)
    """The image data URIs the body's decoder already decoded: filled by the endpoint's
    parse, taken by ``IntakeImages``, dropped with ``decoded``."""
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
    """Estimated input tokens (text, images and documents), what a request cut short is
    charged: written by ``Admission``."""
    document_estimate: int = 0
    """The documents' estimated input tokens at the dearest of the options: written by
    ``IntakeDocuments``, added in by ``Admission``."""
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
    conversation: Conversation | None = None
    """The stored conversation this request continues or starts: written by ``Continuation``."""
    upstream_tap: UpstreamTap | None = None
    """Set by the endpoint for a request from the console's playground, which shows what
    went upstream; None for every other request, which pays nothing for it."""
    documents: dict[tuple[int, int], CheckedDocument] = field(default_factory=dict)
    """Every inline document by (message, part), as the client sent it: written by
    ``IntakeDocuments``, dropped with the request."""
    document_texts: dict[tuple[int, int], str] = field(default_factory=dict)
    """Each document's text layer (and OCR of its pages without one, when OCR is on), for
    the checks and text-only models: written by ``IntakeDocuments`` when a check reads text,
    else by the first attempt that needs it; scanned, never stored."""

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

    async def image_digests(self) -> dict[tuple[int, int], str]:
        """sha256 of every image's bytes, those not yet hashed in one worker-thread call: a
        request of sixteen images pays one thread hop, not sixteen."""
        missing = [at for at in self.images if at not in self.image_hashes]
        if len(missing) > 1:
            datas = [self.decoded[at] for at in missing]
            if sum(len(data) for data in datas) < _THREAD_HASH_BYTES:
                digests = [_sha256(data) for data in datas]
            else:
                digests = await anyio.to_thread.run_sync(_sha256_all, datas)
            self.image_hashes.update(zip(missing, digests, strict=True))
        for at in self.images:
            await self.image_digest(at)  # one image alone, or hashed above: no second hop
        return {at: self.image_hashes[at] for at in self.images}


class Try(msgspec.Struct, frozen=True):
    """One attempt that has ended: its target's key, ``ok`` or the error code, how long."""

    target: str
    outcome: str
    seconds: float


class Attempt(msgspec.Struct, frozen=True):
    """What the request's attempts produced: nothing, for one refused before dispatch.

    A frozen struct rather than a frozen dataclass, like ``Try`` and ``Outcome``: made for
    every request, and a frozen dataclass sets each field through ``object.__setattr__``.
    """

    target: Target | None = None
    """The target of the current (or last) attempt."""
    attempts: int = 0
    upstream_s: float = 0.0
    """Time spent waiting on providers, to tell the gateway's own overhead apart."""
    image_tokens: int = 0
    """The estimated input tokens of the images as they were sent to the target."""
    image_changes: tuple[str, ...] = ()
    """What normalisation did to the images, over every attempt."""
    image_bytes_saved: int = 0
    """Bytes normalisation took off the images, at the last attempt's target."""
    tried: tuple[Try, ...] = ()
    """Every attempt that has ended, in order."""
    document_tokens: int = 0
    """The estimated input tokens of the documents as they were sent to the target."""
    usage: Usage | None = None
    reported_image_tokens: int | None = None
    """What the provider said the images cost, when it says (to compare with the estimate)."""
    generated: tuple[GeneratedImage, ...] = ()
    """The images the answer carried, described (never stored) by the audit."""
    streamed_chars: int = 0
    """Characters of answer text relayed so far (a disconnected stream's output estimate)."""


class Outcome(msgspec.Struct, frozen=True):
    """How a request ended, as its after-steps see it."""

    status: int
    code: str | None = None
    """The error code, None for an answer."""
    attempt: Attempt = msgspec.field(default_factory=Attempt)

    @property
    def cut(self) -> bool:
        """The client left (or the request was cancelled), perhaps with an attempt under way."""
        return self.status == 499


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_all(datas: list[bytes]) -> list[str]:
    return [_sha256(data) for data in datas]
