"""The shape of the config file, as frozen Structs; unknown fields are mistakes."""

from __future__ import annotations

from typing import Literal

import msgspec

from aperture.settings.governance import GovernanceSettings

__all__ = [
    "AuthSettings",
    "Capability",
    "FetchSettings",
    "ImageSettings",
    "ModelConstraints",
    "ModelSettings",
    "ProviderImageSettings",
    "ProviderKind",
    "ProviderSettings",
    "RouteSettings",
    "RouteTarget",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "Strategy",
    "UrlPolicy",
]

UrlPolicy = Literal["reject", "fetch", "passthrough", "auto"]
Capability = Literal["vision", "audio", "video", "image_output", "tools", "json_mode"]
ProviderKind = Literal[
    "openai",
    "azure",
    "anthropic",
    "gemini",
    "bedrock",
    "mistral",
    "cohere",
    "ollama",
    "xai",
    "groq",
    "deepseek",
    "qwen",
    "moonshot",
    "glm",
    "vllm",
]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8080
    admin_port: int = 8090
    max_body_bytes: int = 64 * 1024 * 1024
    # Mounts the provider emulators under /emulator on the public port, for the demo.
    emulator: bool = False


class AuthSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    master_key: str | None = None
    # Keyed-hash secret for stored API keys; defaults to the master key, so set it before
    # rotating the master key or every issued key stops working.
    key_pepper: str | None = None


class StorageSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    database: str = "sqlite:///aperture.db"
    redis: str | None = None
    # Where audit events and ledger rows wait while the database is unreachable (one
    # directory per process).
    spool_dir: str = ".aperture-spool"
    # Longest wait for a Redis connection or reply; after one goes unanswered, Redis calls
    # fail at once for redis_retry_s (budgets 503, rate limits open), then one tries again.
    redis_timeout_s: float = 1.0
    redis_retry_s: float = 1.0
    # A ledger write the database has not confirmed within this is spooled to disk instead.
    ledger_timeout_s: float = 5.0


class FetchSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    timeout_s: float = 10.0
    connect_timeout_s: float = 3.0
    max_redirects: int = 3
    # Host names or CIDRs (an internal image server) exempt from the private-address ban.
    allow_private_hosts: tuple[str, ...] = ()
    allow_http: bool = True
    cache_bytes: int = 64_000_000


class ImageSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url_policy: UrlPolicy = "reject"
    max_image_bytes: int = 20_000_000
    max_image_pixels: int = 100_000_000
    max_images_per_request: int = 100
    max_frames: int = 1000
    # Downsize to the resolution each model actually sees: same answer, fewer bytes and tokens.
    optimize: bool = False
    strip_metadata: bool = True
    fetch: FetchSettings = FetchSettings()


class ProviderImageSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Overrides of the provider kind's built-in image limits (see images/limits.py)."""

    accepted: tuple[str, ...] | None = None
    max_bytes: int | None = None
    counts_base64: bool | None = None
    max_side: int | None = None
    max_images: int | None = None
    animated: bool | None = None
    fetches_urls: bool | None = None


class ProviderSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    kind: ProviderKind
    base_url: str | None = None
    api_key: str | None = None
    headers: dict[str, str] = {}
    timeout_s: float = 600.0  # the whole call, a stream included
    connect_timeout_s: float = 10.0
    first_byte_timeout_s: float = 120.0  # until the first event (reasoning models think first)
    idle_timeout_s: float = 120.0  # between two chunks of a stream
    # Which field carries the output cap upstream; OpenAI's newer models want the long name.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    api_version: str | None = None  # Azure OpenAI's api-version
    region: str | None = None  # AWS Bedrock's region
    images: ProviderImageSettings = ProviderImageSettings()


class ModelConstraints(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    min_max_tokens: int | None = None
    max_images: int | None = None


class ModelSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    provider: str
    upstream_model: str | None = None
    aliases: tuple[str, ...] = ()
    # None means "look the model up in the provider kind's table of known models".
    capabilities: tuple[Capability, ...] | None = None
    constraints: ModelConstraints = ModelConstraints()
    url_policy: UrlPolicy | None = None


Strategy = Literal["weighted", "priority", "latency", "least-busy", "canary"]


class RouteTarget(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    provider: str
    # The model name at that provider; defaults to the name the client asked for.
    model: str | None = None
    weight: float = 1.0
    canary: bool = False
    # Used when neither the catalog nor the kind's table of known models knows the model.
    capabilities: tuple[Capability, ...] | None = None


class RouteSettings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The seed's route shape: requests whose model matches ``model_pattern`` go to
    ``providers`` by ``strategy``."""

    id: str
    model_pattern: str
    strategy: Strategy = "priority"
    providers: tuple[RouteTarget, ...]
    url_policy: UrlPolicy | None = None
    canary_percent: float = 5.0


class Settings(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    server: ServerSettings = ServerSettings()
    auth: AuthSettings | None = None
    storage: StorageSettings = StorageSettings()
    images: ImageSettings = ImageSettings()
    providers: tuple[ProviderSettings, ...] = ()
    models: tuple[ModelSettings, ...] = ()
    routes: tuple[RouteSettings, ...] = ()
    governance: GovernanceSettings = GovernanceSettings()
