"""What the gateway knows about one provider kind, as plain data: the ``ProviderSpec``.

Each kind's spec sits beside its adapter (``_<kind>_spec.py``, or ``presets.py`` for the
kinds that speak OpenAI's wire format) and ``registry`` lists them. Images, routing and
settings read a kind's facts from its spec; nothing else keeps a table keyed by kind.

A spec never imports its adapter: the adapter is named as ``"module:Class"`` and imported on
first use, so reading specs at start-up loads neither botocore nor any adapter's wire types.
"""

from __future__ import annotations

import fnmatch
from typing import Literal

import msgspec

from aperture.settings import Capability

__all__ = [
    "COMMON_IMAGE_TYPES",
    "TOOLS",
    "VISION_TOOLS",
    "VISION_TOOLS_JSON",
    "VISION_TOOLS_REASONING",
    "DocumentLimits",
    "ImageLimits",
    "KnownModel",
    "LogprobSupport",
    "MediaLimits",
    "OtherWire",
    "ProviderSpec",
    "TokenRule",
]

TokenRule = Literal[
    "openai", "anthropic", "bedrock", "gemini", "mistral", "cohere", "qwen", "deepseek",
    "unpublished",
]  # fmt: skip
"""How a kind's images are counted in tokens; ``images.tokens`` picks the formula family from
the rule and the model (Gemini 3, Pixtral, OpenAI's tile and patch models differ).
``unpublished``: the kind publishes no rule; Qwen-VL models it serves count as Qwen's."""

KnownModel = tuple[str, frozenset[Capability]]
"""An ``fnmatch`` pattern over the upstream model name and what a matching model can do."""

COMMON_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""What most providers accept: PNG, JPEG, GIF and WebP."""

# Capability sets the known-model tables of several kinds share.
VISION_TOOLS_JSON: frozenset[Capability] = frozenset({"vision", "tools", "json_mode"})
VISION_TOOLS: frozenset[Capability] = frozenset({"vision", "tools"})
TOOLS: frozenset[Capability] = frozenset({"tools"})
VISION_TOOLS_REASONING: frozenset[Capability] = frozenset({"vision", "tools", "reasoning"})


class ImageLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What a kind accepts in an image; config may override each field per provider.

    Byte caps are stated the way the provider counts them: Anthropic and Bedrock-Claude check
    the base64 string, everyone else the decoded bytes.
    """

    accepted: frozenset[str] = COMMON_IMAGE_TYPES
    max_bytes: int = 20_000_000
    counts_base64: bool = False
    max_side: int = 8192
    max_images: int = 500
    # Anthropic lowers the side cap when a request carries many images.
    many_images: int | None = None
    many_images_max_side: int | None = None
    animated: bool = False
    # The resolution the model actually sees; `optimize` downsizes to it.
    effective_long_edge: int | None = None
    low_detail_long_edge: int | None = None

    def max_side_for(self, image_count: int) -> int:
        if self.many_images is not None and image_count > self.many_images:
            return min(self.max_side, self.many_images_max_side or self.max_side)
        return self.max_side

    def wire_size(self, size_bytes: int) -> int:
        """The size the provider measures: the base64 length for those that count it."""
        return (size_bytes + 2) // 3 * 4 if self.counts_base64 else size_bytes


class DocumentLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What a kind reads natively in a document (a PDF); None on the spec: it reads none.

    The token rule: a page costs ``page_tokens`` (the first matching glob of
    ``page_tokens_by_model`` first) when the kind states a flat figure; else, with
    ``pages_as_images``, the page as an image at the model's resolution (the kind's image
    rule), plus ``text_tokens_per_page`` for its text layer.
    """

    max_bytes: int
    max_pages: int
    page_tokens: int | None = None
    page_tokens_by_model: tuple[tuple[str, int], ...] = ()
    pages_as_images: bool = True
    text_tokens_per_page: int = 0

    def flat_page_tokens(self, upstream_model: str) -> int | None:
        """The flat per-page figure for ``upstream_model``, None when pages cost as images."""
        name = upstream_model.lower().rsplit("/", 1)[-1]
        for pattern, tokens in self.page_tokens_by_model:
            if fnmatch.fnmatchcase(name, pattern):
                return tokens
        return self.page_tokens


class LogprobSupport(msgspec.Struct, frozen=True, kw_only=True):
    """A kind that returns token log probabilities when asked."""

    max_top: int
    """The most alternatives per position it returns (``top_logprobs``); 0: the chosen only."""
    except_models: tuple[str, ...] = ()
    """``fnmatch`` patterns of its models that refuse logprobs (reasoning models)."""


class MediaLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What a kind's API takes in one audio or video part.

    ``formats`` are the names clients send (``input_audio.format``: ``wav``, ``mp3``) or, for
    video, the container types; None where the API states no list. Limits are None where
    the provider documents none; ``max_seconds`` is checked where the gateway can read the
    duration cheaply (WAV), see ``media.duration``.
    """

    formats: frozenset[str] | None = None
    max_bytes: int | None = None
    max_seconds: float | None = None
    source: str = ""
    """Where the limits come from, for whoever revisits them."""


class OtherWire(msgspec.Struct, frozen=True, kw_only=True):
    """Another API of a kind, chosen per model (``wire``), and what it carries; the kind's
    image limits, token rule and known models apply to it as to the kind's own."""

    name: str
    adapter: str
    """The adapter class, ``"module:Class"``, imported on first use."""
    audio: MediaLimits | None = None
    video: MediaLimits | None = None
    logprobs: LogprobSupport | None = None
    max_choices: int = 1


class ProviderSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything known about one provider kind; the fields without a default are required."""

    kind: str
    """The ``kind`` a provider is configured with."""
    adapter: str
    """The adapter class, ``"module:Class"``, imported on first use."""
    wire: str
    """The wire format's name (``"openai-chat"``), shared by the kinds that speak it; each wire
    has an emulator and runs the one contract suite (a test holds every wire to that)."""
    base_url: str | None
    """The endpoint used when the config names none; None when the adapter derives one (from
    the region) or the config must name one (then ``base_url_needed`` says what)."""
    images: ImageLimits
    fetches_urls: bool
    """True when the provider fetches an image URL itself, so one may be passed through."""
    image_tokens: TokenRule
    known_models: tuple[KnownModel, ...]
    """Capabilities of well-known models, first match wins; an unmatched model is text-only
    unless the config declares its capabilities."""
    base_url_needed: str | None = None
    """What the config's ``base_url`` must name when the kind has no default, for the error."""
    api_key_env: str | None = None
    """The environment variable the demo reads a key from."""
    demo_models: tuple[str, ...] = ()
    """Models the demo offers when that key is present."""
    documents: DocumentLimits | None = None
    """Native PDF input; its vision models then have the ``documents`` capability."""
    audio: MediaLimits | None = None
    """Audio parts its API takes (on its models with ``audio``); None: it carries none, so no
    model of the kind has the ``audio`` capability, whatever the config says."""
    video: MediaLimits | None = None
    """Video parts its API takes (on its models with ``video``); None as for ``audio``."""
    logprobs: LogprobSupport | None = None
    """Token log probabilities; its models then have the ``logprobs`` capability."""
    max_choices: int = 1
    """The most choices one request may ask for (``n``); above 1 its models have ``choices``."""
    wires: tuple[OtherWire, ...] = ()
    """Other APIs of the kind a model may be configured to use (a model's ``wire``); the
    fields above describe the kind's own, which serves every other model."""

    def wire_named(self, wire: str | None) -> ProviderSpec | OtherWire:
        """What serves models with ``wire``: the kind itself for None.

        Raises:
            LookupError: the kind has no such wire.
        """
        if wire is None:
            return self
        for other in self.wires:
            if other.name == wire:
                return other
        offered = ", ".join(w.name for w in self.wires) or "none"
        raise LookupError(f"provider kind {self.kind!r} has no wire {wire!r} (offered: {offered})")

    def carried(
        self, capabilities: frozenset[str], upstream_model: str, wire: str | None = None
    ) -> frozenset[str]:
        """``capabilities`` (declared or known) as this kind's API (or its ``wire``) can serve
        them: without the media it cannot carry, with the features it adds (``logprobs``,
        ``choices``).

        Raises:
            LookupError: the kind has no such wire.
        """
        api = self.wire_named(wire)
        out = set(capabilities)
        if api.audio is None:
            out.discard("audio")
        if api.video is None:
            out.discard("video")
        logprobs = api.logprobs
        if logprobs is not None and not any(
            fnmatch.fnmatchcase(upstream_model, p) for p in logprobs.except_models
        ):
            out.add("logprobs")
        if api.max_choices > 1:
            out.add("choices")
        return frozenset(out)
