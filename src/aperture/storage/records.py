"""The records the stores keep: frozen Structs, metadata only.

Times are timezone-aware UTC ``datetime``s, except ``AuditEvent.time``: audit events leave the
gateway as JSON (admin API, JSON-lines export, the spool file), so their time is the ISO 8601
UTC string users read there, e.g. ``2026-11-20T23:33:00.123Z``; ``audit_time()`` makes one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec

from aperture.model.chat import InlineImage

__all__ = [
    "Admission",
    "ApiKey",
    "AuditAttempt",
    "AuditClock",
    "AuditDocument",
    "AuditEvent",
    "AuditFinding",
    "AuditGeneratedImage",
    "AuditImage",
    "AuditQuery",
    "AuditUsage",
    "BudgetCharge",
    "BudgetDecision",
    "BudgetPeriod",
    "BudgetScope",
    "BudgetState",
    "ClaimedHold",
    "ConsoleSession",
    "Document",
    "ResponseBlob",
    "StoredResponse",
    "UsageKind",
    "UsageRow",
    "UsageTotals",
    "WindowAdmission",
    "audit_time",
    "check_json_object",
    "parse_audit_time",
]

BudgetPeriod = Literal["daily", "weekly", "monthly", "total"]
UsageKind = Literal["reserve", "settle", "release", "adjust", "refund"]

# Ledger kinds that move money; reserve/release only bracket a request in flight.
SPEND_KINDS: tuple[UsageKind, ...] = ("settle", "adjust", "refund")

_OBJECT = msgspec.json.Decoder(dict[str, object])
_SHA256 = re.compile(r"[0-9a-f]{64}")
# A host name or an IP literal: what survives of a URL once path, query and userinfo are gone.
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")


def _require_utc(value: datetime | None, field: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{field} must be timezone-aware")


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """An API key as stored: never the secret, only its keyed hash (HMAC-SHA256 with a pepper).

    ``models`` ``None`` means every model; budgets and limits ``None`` mean unlimited.
    """

    id: str
    name: str
    key_hash: bytes
    created_at: datetime
    tenant: str | None = None
    models: tuple[str, ...] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_tokens: int | None = None
    budget_period: BudgetPeriod | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    admin: bool = False
    """An admin key may also call the admin API (as the master key does)."""

    def __post_init__(self) -> None:
        _require_utc(self.created_at, "created_at")
        _require_utc(self.expires_at, "expires_at")
        _require_utc(self.revoked_at, "revoked_at")

    def usable_at(self, now: datetime) -> bool:
        """True unless revoked or expired at ``now``."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or now < self.expires_at


class Document(msgspec.Struct, frozen=True, kw_only=True):
    """A route or model definition: a JSON object the admin API and routing decode themselves.

    ``version`` is the value of the collection's change counter when this document was last
    written, so it also orders documents by their last change.
    """

    id: str
    body: bytes
    version: int
    updated_at: datetime


class AuditUsage(msgspec.Struct, frozen=True, kw_only=True):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    image_tokens_estimate: int | None = None
    image_tokens_reported: int | None = None
    document_tokens_estimate: int | None = None
    """The documents' estimated tokens at the target, None for a request without any."""


class AuditDocument(msgspec.Struct, frozen=True, kw_only=True):
    """What the audit trail may say about a document: never its bytes or its text."""

    sha256: str
    mime: str
    bytes: int
    pages: int
    filename: str | None = None
    """As the client named it, redacted when the PII scan (``redact``) finds data in it."""

    def __post_init__(self) -> None:
        if not _SHA256.fullmatch(self.sha256):
            raise ValueError("sha256 must be 64 lowercase hex digits")


class AuditGeneratedImage(msgspec.Struct, frozen=True, kw_only=True):
    """An image the model made, as the audit may describe it: never its bytes."""

    sha256: str
    mime: str
    bytes: int


class AuditImage(msgspec.Struct, frozen=True, kw_only=True):
    """What the audit trail may say about an image: never pixels, base64 or the full URL."""

    sha256: str
    mime: str
    width: int
    height: int
    bytes: int
    frames: int
    source: str
    """``inline`` for data URIs, else the host the image was fetched from (no path, no query)."""

    def __post_init__(self) -> None:
        if not _SHA256.fullmatch(self.sha256):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        if not _HOST.fullmatch(self.source):
            # Refusing anything but a bare host keeps presigned query strings out of the trail.
            raise ValueError("source must be 'inline' or a bare host name")

    @classmethod
    def from_inline(cls, image: InlineImage, sha256: str) -> AuditImage:
        """The descriptor of an image intake has read; the digest is computed lazily elsewhere."""
        return cls(
            sha256=sha256,
            mime=image.mime,
            width=image.width,
            height=image.height,
            bytes=image.size_bytes,
            frames=image.frames,
            source=image.source,
        )


class AuditFinding(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a governance check found: which check, what it did, where; never the value."""

    check: Literal["policy", "pii", "guardrail"]
    name: str
    """The rule or guardrail name, or the PII detector (``email``, ``card``...)."""
    action: Literal["block", "redact", "log"]
    param: str | None = None
    """The offending field, e.g. ``messages[0].content[1].text``."""
    count: int = 1


class AuditAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt on one target: where it went, how it ended (``ok`` or an error code), how
    long the provider took."""

    target: str
    """``provider/upstream_model``, as breakers and metrics name a target."""
    outcome: str
    latency_ms: float


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One ``GATEWAY_RESPONSE`` per request, with exactly the fields of INTERFACES.md.

    ``time`` is an ISO 8601 UTC string (see ``audit_time()``); it is checked here, when the
    event is made, so one bad event can never poison a batch later. ``text`` holds the text
    portions after redaction; no field can hold image bytes, headers or credentials.
    """

    # In the order of INTERFACES.md, which is also the order of the JSON objects users read.
    event: Literal["GATEWAY_RESPONSE"] = "GATEWAY_RESPONSE"
    request_id: str
    time: str
    key_id: str | None = None
    tenant: str | None = None
    endpoint: str
    model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    attempts: int
    status: int
    error_code: str | None = None
    usage: AuditUsage = AuditUsage()
    latency_ms: float
    text: tuple[str, ...] = ()
    images: tuple[AuditImage, ...] = ()
    findings: tuple[AuditFinding, ...] = ()
    """Policy, PII and guardrail findings: names, actions and fields, never matched values."""
    generated_images: tuple[AuditGeneratedImage, ...] = ()
    """The images the answer carried (chat with image output, the Images API)."""
    # What the console shows of a request's way through the gateway. Defaults, so events
    # written before these fields existed still decode.
    route: str | None = None
    """The id of the route the model resolved through; None for a model served directly."""
    tried: tuple[AuditAttempt, ...] = ()
    """Every attempt, in order: target, outcome and the provider's latency."""
    image_changes: tuple[str, ...] = ()
    """What normalisation did to the images (``resized``, ``transcoded``...), over all attempts."""
    image_bytes_saved: int = 0
    """Bytes normalisation took off the images as the client sent them (at the last attempt)."""
    documents: tuple[AuditDocument, ...] = ()
    """The documents (PDFs) the request carried, described."""

    def __post_init__(self) -> None:
        if not self.request_id:
            raise ValueError("request_id must not be empty")
        parse_audit_time(self.time)

    @property
    def timestamp_ms(self) -> int:
        """Milliseconds since the epoch: the indexed column time-range queries use."""
        return int(parse_audit_time(self.time).timestamp() * 1000)


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters for ``AuditStore.query``/``export``; ``since`` is inclusive, ``until`` exclusive.

    ``limit`` ``None`` means no limit (export); the admin API caps it before it gets here.
    """

    request_id: str | None = None
    key_id: str | None = None
    tenant: str | None = None
    model: str | None = None
    status: int | None = None
    error_code: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = 100

    def __post_init__(self) -> None:
        _require_utc(self.since, "since")
        _require_utc(self.until, "until")
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must not be negative")


class UsageRow(msgspec.Struct, frozen=True, kw_only=True):
    """One append-only ledger entry; money in integer micro-dollars, never floats.

    Refunds carry negative amounts. ``(request_id, kind)`` is unique, so a retried write is a
    no-op instead of a double charge.
    """

    request_id: str
    kind: UsageKind
    created_at: datetime
    key_id: str | None = None
    tenant: str | None = None
    model: str | None = None
    provider: str | None = None
    amount_micros: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    source: Literal["provider", "estimated", "abandoned", "refused"] = "provider"
    """Where the usage comes from: the provider's report, the gateway's count of what it
    relayed, (``abandoned``) the admission estimate, charged by a surviving instance for a
    request whose instance was lost mid-flight, or (``refused``) nothing: the request was
    refused while the budget store could not be told, and this zero row is what a survivor
    reclaiming its hold finds, so it charges nothing."""

    def __post_init__(self) -> None:
        _require_utc(self.created_at, "created_at")


class UsageTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Sums over the spend kinds (settle, adjust, refund) of the ledger."""

    amount_micros: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Admission(msgspec.Struct, frozen=True):
    """The answer of ``Counters.incr``: whether the amount fit, and the counter's value after."""

    admitted: bool
    value: int


class WindowAdmission(msgspec.Struct, frozen=True):
    """The answer of ``Limits.acquire``.

    ``used`` is the window's total after the cost was added (or, refused, without it);
    ``retry_after_s`` is, when refused, how long until enough of the window has slid by for
    the cost to fit, and None when it never can (the cost alone is over the limit).
    """

    admitted: bool
    used: int
    retry_after_s: float | None = None


class BudgetCharge(msgspec.Struct, frozen=True):
    """An amount against a budget: money in integer micro-dollars, and tokens."""

    micros: int = 0
    tokens: int = 0


class BudgetScope(msgspec.Struct, frozen=True, kw_only=True):
    """One budget a request is charged to, in one period window.

    ``key`` names the budget and its window (``key:3f2a:m:2026-11``), so a new window is a new
    key and nothing has to be reset; ``ttl_s`` keeps the state until the window is over.
    ``None`` limits are not enforced (the spend is still counted).
    """

    key: str
    limit_micros: int | None = None
    limit_tokens: int | None = None
    ttl_s: float


class BudgetState(msgspec.Struct, frozen=True):
    """A budget window's counters: settled spend, and what requests in flight hold."""

    spent: BudgetCharge
    reserved: BudgetCharge


class BudgetDecision(msgspec.Struct, frozen=True, kw_only=True):
    """The answer of ``Limits.reserve``.

    ``reserved``: held in every scope. ``denied``: ``scope`` has no room (``state`` says how
    full it is); nothing was held anywhere. ``unseeded``: ``scope`` has no spent counter yet;
    seed it from the ledger and reserve again. ``duplicate``: this request id already holds a
    reservation (a retried reserve), which stands unchanged, or was already settled.
    """

    outcome: Literal["reserved", "denied", "unseeded", "duplicate"]
    scope: str | None = None
    state: BudgetState | None = None


class ClaimedHold(msgspec.Struct, frozen=True):
    """A hold of a lost instance, claimed by a survivor (``Limits.claim``) to settle it.

    ``note`` is what the owner stored with the hold at ``reserve`` (opaque to the store).
    """

    instance: str
    request_id: str
    note: bytes


def audit_time(when: datetime | None = None) -> str:
    """``when`` (default now) as the ISO 8601 UTC string with milliseconds audit events use."""
    moment = (when or datetime.now(UTC)).astimezone(UTC)
    # isoformat() rather than strftime(): a third cheaper, and this runs for every request.
    return moment.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


class AuditClock:
    """``audit_time()`` of now, for a caller that asks many times a second: the date and the
    time to the second are formatted once a second, the milliseconds at each call."""

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._clock_ns = clock_ns
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        ms = self._clock_ns() // 1_000_000
        second, fraction = divmod(ms, 1000)
        if second != self._second:
            # isoformat() of a whole second has no fraction: exactly "YYYY-MM-DDTHH:MM:SS".
            self._prefix = datetime.fromtimestamp(second, UTC).replace(tzinfo=None).isoformat()
            self._second = second
        return f"{self._prefix}.{fraction:03d}Z"


def parse_audit_time(value: str) -> datetime:
    """Parse an audit ``time``; raises ValueError unless it is ISO 8601 in UTC (Z or +00:00)."""
    moment = datetime.fromisoformat(value)
    if moment.utcoffset() != timedelta(0):
        raise ValueError(f"audit time must be UTC, like 2026-11-20T23:33:00.000Z: {value!r}")
    return moment.astimezone(UTC)


def check_json_object(body: bytes) -> None:
    """Raise ValueError unless ``body`` is a JSON object, as every ``Document.body`` is."""
    try:
        _OBJECT.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"a document must be a JSON object: {exc}") from exc


class StoredResponse(msgspec.Struct, frozen=True, kw_only=True):
    """A Responses API answer kept so a later request can continue it (``previous_response_id``).

    ``conversation`` and ``answer`` are opaque JSON to the stores (the pipeline writes and
    reads them); images in the conversation are references to ``ResponseBlob``s, listed in
    ``images``, so a blob is kept exactly while some stored response names it.
    """

    id: str
    owner: str
    """Who may read or continue it: the key's tenant, else the key's id ("" when open)."""
    created_at: datetime
    expires_at: datetime
    conversation: bytes
    answer: bytes
    images: tuple[str, ...] = ()
    """sha256 (hex) of every image blob the conversation refers to."""
    key_id: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        _require_utc(self.created_at, "created_at")
        _require_utc(self.expires_at, "expires_at")
        for digest in self.images:
            if not _SHA256.fullmatch(digest):
                raise ValueError("images must be lowercase hex sha256 digests")


class ResponseBlob(msgspec.Struct, frozen=True):
    """An image a stored conversation needs, by the sha256 of its bytes."""

    sha256: str
    mime: str
    data: bytes


class ConsoleSession(msgspec.Struct, frozen=True, kw_only=True):
    """A console sign-in as stored: never the session id itself, never a key's secret.

    The browser's cookie holds the id; the store keeps only its SHA-256, so reading the table
    signs no one in. ``principal`` names who signed in, and is resolved again through the key
    cache on every use, so revoking the key ends the session wherever it is used.
    """

    id_hash: bytes
    """SHA-256 of the session id in the cookie."""
    principal: str
    """The admin key's id, or ``master:<fingerprint>`` for the master key."""
    csrf: str
    """The token state-changing calls must echo in ``x-csrf-token``."""
    created_at: datetime
    expires_at: datetime
    """The absolute end: no use extends it."""
    idle_until: datetime
    """The end if unused; each use moves it on, never past ``expires_at``."""

    def __post_init__(self) -> None:
        _require_utc(self.created_at, "created_at")
        _require_utc(self.expires_at, "expires_at")
        _require_utc(self.idle_until, "idle_until")

    def live_at(self, now: datetime) -> bool:
        return now < self.expires_at and now < self.idle_until
