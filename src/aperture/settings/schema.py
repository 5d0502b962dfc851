"""The shape of the config file, as frozen Structs; unknown fields are mistakes."""

from __future__ import annotations

from typing import Literal

import msgspec

from aperture.settings.governance import GovernanceSettings

__all__ = [
    "AuthSettings",
    "Capability",
    "DocumentSettings",
    "FetchSettings",
    "ImageSettings",
    "ModelConstraints",
    "ModelSettings",
    "ProviderImageSettings",
    "ProviderKind",
    "ProviderSettings",
    "ResponsesSettings",
    "RouteSettings",
    "RouteTarget",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "Strategy",
    "UrlPolicy",
]

UrlPolicy = Literal["reject", "fetch", "passthrough", "auto"]
Capability = Literal[
    "vision", "audio", "video", "image_output", "tools", "json_mode", "documents", "reasoning"
]  # fmt: skip
# A kind listed in ``aperture.providers.registry``; ``load`` checks it against that list, so
# that a new kind needs its spec and a registry line, not a line here as well.
ProviderKind = str


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # Address both ports listen on; 0.0.0.0 to accept connections from other machines.
    host: str = "127.0.0.1"
    # The public port: the chat APIs, /healthz, /readyz (and /metrics by default).
    port: int = 8080
    # The admin API's port (keys, audit); it needs auth.master_key.
    admin_port: int = 8090
    # Largest request body accepted; a larger one is answered 413.
    max_body_bytes: int = 64 * 1024 * 1024
    # A client must send its request line and headers, then its body, within these; a
    # connection that trickles bytes is answered 408 and closed (uvicorn has no deadline).
    header_timeout_s: float = 10.0
    # Deadline for the whole request body once the headers are in.
    body_timeout_s: float = 30.0
    # A client that has stopped taking its answer (less than 64 KiB in this long while
    # bytes wait for it) is cut off, and its request is accounted as a disconnect.
    write_idle_timeout_s: float = 30.0
    # On SIGTERM: how long requests in flight may run on before streams are ended with an
    # in-band error and waiting calls are answered 503; readiness is false meanwhile.
    drain_timeout_s: float = 10.0
    # Mounts the provider emulators under /emulator on the public port, for the demo.
    emulator: bool = False
    # Which port answers GET /metrics (model and target names, token volumes): the public
    # one, or only the admin one; with metrics_token set, a scrape must send it as a bearer
    # token (Prometheus: `authorization: {credentials: ...}`), on either port.
    metrics_port: Literal["public", "admin"] = "public"
    # Bearer token a scrape of /metrics must send; none means open.
    metrics_token: str | None = None


class AuthSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # The admin key; with it set, every public call needs an issued API key.
    master_key: str | None = None
    # Keyed-hash secret for stored API keys; defaults to the master key, so set it before
    # rotating the master key or every issued key stops working.
    key_pepper: str | None = None
    # A console session unused this long ends (seconds; a working day by default).
    console_idle_s: float = 8 * 3600.0
    # A console session ends this long after sign-in however much it is used (seconds).
    console_max_s: float = 24 * 3600.0
    # How long an instance trusts its copy of a console session before reading the database
    # again: a sign-out on one instance is honoured by every other within this (seconds).
    console_cache_s: float = 2.0


class StorageSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # SQLAlchemy URL of the keys, ledger and audit store (sqlite:///F or postgresql://...).
    database: str = "sqlite:///aperture.db"
    # Redis URL shared by every instance: rate limits, budget holds, breakers; none keeps them
    # per process.
    redis: str | None = None
    # Prefix of every Redis key: deployments sharing one Redis need their own, or each
    # would count the other's rate limits and take the other's instances for lost.
    redis_prefix: str = "aperture:"
    # Where audit events and ledger rows wait while the database is unreachable (one
    # directory per process).
    spool_dir: str = ".aperture-spool"
    # With Redis: each instance beats this often, and counts as lost (its budget holds settled
    # by the survivors, at the estimate) once it has not beaten for instance_ttl_s.
    heartbeat_s: float = 1.0
    # How long an instance may miss its heartbeat before it counts as lost.
    instance_ttl_s: float = 5.0
    # Longest wait for a Redis connection or reply; after one goes unanswered, Redis calls
    # fail at once for redis_retry_s (budgets 503, rate limits open), then one tries again.
    redis_timeout_s: float = 2.0
    # After a Redis call goes unanswered, how long calls fail at once before one retries.
    redis_retry_s: float = 1.0
    # A ledger write the database has not confirmed within this is spooled to disk instead.
    ledger_timeout_s: float = 5.0
    # Longest wait for one database operation (pool, connect, query): past it the caller
    # gets StorageError (admin calls 503 with Retry-After). PostgreSQL's command timeout and
    # SQLite's lock wait. Migrations are exempt: they may rightly take longer.
    database_timeout_s: float = 5.0


class ResponsesSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The Responses API's stored answers (``previous_response_id``, ``store``)."""

    # How long an answer sent with store (the default) can be continued or read back, in
    # hours; expired answers and the images only they needed are purged from the database.
    retention_hours: float = 720.0


class FetchSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # Deadline for fetching one image URL, redirects included.
    timeout_s: float = 10.0
    # Deadline for connecting to an image URL's host.
    connect_timeout_s: float = 3.0
    # Most redirects followed when fetching an image URL.
    max_redirects: int = 3
    # Names or CIDRs (an internal image server) exempt from the private-address ban, each on
    # the standard port (http 80, https 443) unless written: "images.internal:8443",
    # "10.0.0.0/8:8080", "[fd00::/8]:8443". Syntax and meaning: settings/fetch_allow.py.
    allow_private_hosts: tuple[str, ...] = ()
    # Fetch plain http:// URLs too (https is always allowed).
    allow_http: bool = True
    # Size of the in-memory cache of fetched images, in bytes.
    cache_bytes: int = 64_000_000


class ImageDecodeSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where images are decoded: child processes, each under a memory and CPU ceiling."""

    workers: int | None = None  # None: one per CPU; 0: decode in threads, without limits
    max_memory_mb: int = 1024  # per worker; a 100 MP PNG needs about 600 MB with Pillow
    max_cpu_s: int = 20  # per image


class ImageSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # What to do with an image given as a URL: refuse it, fetch it, pass it to the provider, or
    # decide per target.
    url_policy: UrlPolicy = "reject"
    # Largest single image, decoded, in bytes.
    max_image_bytes: int = 20_000_000
    # Largest single image in pixels (width times height); guards against decompression bombs.
    max_image_pixels: int = 100_000_000
    # Most images one request may carry.
    max_images_per_request: int = 100
    # Most frames an animated image may have.
    max_frames: int = 1000
    # Downsize to the resolution each model actually sees: same answer, fewer bytes and tokens.
    optimize: bool = False
    # Remove EXIF and other metadata (locations, camera serials) from images sent upstream.
    strip_metadata: bool = True
    fetch: FetchSettings = FetchSettings()
    decode: ImageDecodeSettings = ImageDecodeSettings()


class DocumentSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Documents (PDFs) in requests: checked at intake before any provider sees them."""

    # The largest document intake decodes; each provider's own cap (its spec) applies too.
    max_document_bytes: int = 32_000_000
    # Counted from the page tree before any page is parsed: a page bomb costs nothing.
    max_pages: int = 100
    # Documents one request may carry, across all its messages.
    max_documents_per_request: int = 20
    # A page side above this (in PDF points; 14400 is the PDF spec's own limit) is a bomb.
    max_page_side_pt: float = 14_400.0
    # For a model that reads no documents and no images: send the PDF's text layer as text
    # (extract), or refuse with unsupported_capability naming the models that read PDFs.
    text_only: Literal["extract", "reject"] = "reject"
    # Pages one request may have rendered to images (for vision models without native PDF
    # input); a document with more is refused before any page is drawn.
    render_max_pages: int = 50
    # Pixels of one rendered page at most, whatever the model's own resolution allows.
    render_max_pixels: int = 4_200_000
    # Deadline for rendering one request's pages (each job is also under the decode pool's
    # memory and CPU ceilings).
    render_timeout_s: float = 60.0
    # Characters of a document's text layer read for the checks and for text-only models.
    max_text_chars: int = 200_000


class ProviderImageSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Overrides of the provider kind's image limits (its spec in providers/)."""

    # Image MIME types the provider accepts; others are converted.
    accepted: tuple[str, ...] | None = None
    # Largest image the provider accepts, in bytes.
    max_bytes: int | None = None
    # Whether the provider's byte limit counts the base64 text rather than the raw bytes.
    counts_base64: bool | None = None
    # Longest side, in pixels, the provider accepts; larger images are downsized.
    max_side: int | None = None
    # Most images the provider accepts in one request.
    max_images: int | None = None
    # Whether the provider accepts animated images (otherwise the first frame is sent).
    animated: bool | None = None
    # Whether the provider fetches image URLs itself (url_policy passthrough).
    fetches_urls: bool | None = None


class ProviderSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # The provider's name, as models and routes refer to it.
    name: str
    # Which API the provider speaks (its spec in providers/).
    kind: ProviderKind
    # The API's base URL; defaults to the kind's public endpoint.
    base_url: str | None = None
    # The credential sent upstream; ${ENV_VAR} reads it from the environment.
    api_key: str | None = None
    # Extra headers sent with every upstream call.
    headers: dict[str, str] = {}
    timeout_s: float = 600.0  # the whole call, a stream included
    # Deadline for connecting to the provider.
    connect_timeout_s: float = 10.0
    first_byte_timeout_s: float = 120.0  # until the first event (reasoning models think first)
    idle_timeout_s: float = 120.0  # between two chunks of a stream
    # One stream event (an SSE event, an NDJSON line, an event-stream frame) over this is the
    # provider's failure, not memory the gateway holds; so is a whole answer over the other.
    max_event_bytes: int = 16 * 1024 * 1024
    # Largest whole answer accepted from the provider.
    max_response_bytes: int = 64 * 1024 * 1024
    # How long a target whose quota or billing limit is spent stays out of rotation (shared
    # by every instance through the breakers' counters) before one probe tries it again.
    quota_cooldown_s: float = 60.0
    # Which field carries the output cap upstream; OpenAI's newer models want the long name.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    api_version: str | None = None  # Azure OpenAI's api-version
    region: str | None = None  # AWS Bedrock's region
    images: ProviderImageSettings = ProviderImageSettings()


class ModelConstraints(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # Smallest max_tokens a request to this model may ask for; a smaller one is refused.
    min_max_tokens: int | None = None
    # Most images a request to this model may carry.
    max_images: int | None = None


class ModelSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # The public model name clients ask for.
    name: str
    # The provider (providers[].name) that serves it.
    provider: str
    # The model's name at the provider; defaults to name.
    upstream_model: str | None = None
    # Other public names for the same model.
    aliases: tuple[str, ...] = ()
    # None means "look the model up in the provider kind's table of known models".
    capabilities: tuple[Capability, ...] | None = None
    constraints: ModelConstraints = ModelConstraints()
    # Overrides images.url_policy for this model.
    url_policy: UrlPolicy | None = None
    # Which of the provider's APIs serves the model: "responses" calls the openai or azure
    # kind's Responses API (/v1/responses) instead of Chat Completions, for models served
    # only there. None uses the kind's own API.
    wire: str | None = None


Strategy = Literal["weighted", "priority", "latency", "least-busy", "canary"]


class RouteTarget(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # The provider (providers[].name) of this target.
    provider: str
    # The model name at that provider; defaults to the name the client asked for.
    model: str | None = None
    # Relative share of requests with strategy weighted.
    weight: float = 1.0
    # Whether this target is the canary with strategy canary.
    canary: bool = False
    # Used when neither the catalog nor the kind's table of known models knows the model.
    capabilities: tuple[Capability, ...] | None = None


class RouteSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The seed's route shape: requests whose model matches ``model_pattern`` go to
    ``providers`` by ``strategy``."""

    # The route's name, in audit events and metrics.
    id: str
    # Glob on the requested model name that selects this route.
    model_pattern: str
    # How a target is chosen among the route's providers.
    strategy: Strategy = "priority"
    providers: tuple[RouteTarget, ...]
    # Overrides images.url_policy for requests on this route.
    url_policy: UrlPolicy | None = None
    # With strategy canary: the share of requests (percent) sent to canary targets.
    canary_percent: float = 5.0


class Settings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    server: ServerSettings = ServerSettings()
    auth: AuthSettings | None = None
    storage: StorageSettings = StorageSettings()
    images: ImageSettings = ImageSettings()
    documents: DocumentSettings = DocumentSettings()
    responses: ResponsesSettings = ResponsesSettings()
    providers: tuple[ProviderSettings, ...] = ()
    models: tuple[ModelSettings, ...] = ()
    routes: tuple[RouteSettings, ...] = ()
    governance: GovernanceSettings = GovernanceSettings()
    # Also serve the demo catalog (settings/demo.py): its providers, answered by the
    # emulator mounted on the public port under /emulator, and its models. Names the config
    # gives itself take precedence.
    demo: bool = False
