"""The canonical chat request: one shape for every client dialect and every provider."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from aperture.model.reasoning import Reasoning, Thought

__all__ = [
    "Audio",
    "CacheMark",
    "ChatRequest",
    "Detail",
    "File",
    "Image",
    "ImageTask",
    "InlineDocument",
    "InlineImage",
    "Message",
    "NamedToolChoice",
    "Part",
    "ResponseFormat",
    "Role",
    "Text",
    "Thread",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "Video",
]

Role = Literal["system", "developer", "user", "assistant", "tool"]
Detail = Literal["auto", "low", "high"]


class CacheMark(msgspec.Struct, frozen=True):
    """A prompt-cache breakpoint the client set after this part, message or tool.

    Anthropic's ``cache_control`` (``{"type": "ephemeral", "ttl": ...}``) in canonical form;
    providers with explicit caching place their own marker there (Bedrock a ``cachePoint``),
    the rest cache implicitly or not at all and drop it.
    """

    type: str = "ephemeral"
    ttl: str | None = None


class Text(msgspec.Struct, frozen=True, tag="text"):
    text: str
    cache: CacheMark | None = None


class InlineImage(msgspec.Struct, frozen=True):
    """What intake learned about an image whose bytes the gateway holds.

    ``Image.url`` is then a canonical data URI with the sniffed MIME type; its base64
    payload starts at ``payload_offset``, so adapters that need bare base64 slice it once
    instead of keeping a second copy around.
    """

    mime: str
    width: int
    height: int
    size_bytes: int
    frames: int
    payload_offset: int
    source: str = "inline"
    """``inline`` for data URIs, else the host the gateway fetched the image from."""


class Image(msgspec.Struct, frozen=True, tag="image"):
    """An image part: a data URI or an http(s) URL, as the client sent it until intake runs."""

    url: str
    detail: Detail | None = None
    inline: InlineImage | None = None
    cache: CacheMark | None = None

    @property
    def is_data_uri(self) -> bool:
        return self.url[:5].lower() == "data:"

    @property
    def base64(self) -> str:
        """The bare base64 payload of an inline image (a copy: call once per use)."""
        if self.inline is None:
            raise ValueError("not an inline image")
        return self.url[self.inline.payload_offset :]


class Audio(msgspec.Struct, frozen=True, tag="audio"):
    data: str
    format: str


class Video(msgspec.Struct, frozen=True, tag="video"):
    url: str


class InlineDocument(msgspec.Struct, frozen=True):
    """What intake learned about a document whose bytes the gateway holds.

    ``File.file_data`` is then a canonical data URI with the sniffed type, its base64 payload
    starting at ``payload_offset``; the audit keeps this descriptor, never the bytes.
    """

    mime: str
    size_bytes: int
    pages: int
    sha256: str
    payload_offset: int


class File(msgspec.Struct, frozen=True, tag="file"):
    """A document part (a PDF): every dialect's document shape arrives as this one.

    ``file_data`` is a data URI as the client sent it until intake runs, ``url`` a document
    URL (Anthropic's ``url`` source), ``file_id`` a provider-side upload; ``filename`` is
    the name some providers require (Bedrock's ``name``).
    """

    file_id: str | None = None
    file_data: str | None = None
    filename: str | None = None
    url: str | None = None
    inline: InlineDocument | None = None
    cache: CacheMark | None = None

    @property
    def base64(self) -> str:
        """The bare base64 payload of an inline document (a copy: call once per use)."""
        if self.inline is None or self.file_data is None:
            raise ValueError("not an inline document")
        return self.file_data[self.inline.payload_offset :]


Part = Text | Image | Audio | Video | File


class ToolCall(msgspec.Struct, frozen=True):
    id: str
    name: str
    arguments: str
    cache: CacheMark | None = None


class Message(msgspec.Struct, frozen=True):
    """One turn. ``content`` keeps a plain string as a string: some servers want it so."""

    role: Role
    content: str | tuple[Part, ...] | None = None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None
    cache: CacheMark | None = None
    """On a tool message: a cache breakpoint after its result (Anthropic's tool_result)."""
    reasoning: tuple[Thought, ...] | None = None
    """On an assistant message: the thoughts the model sent with it, which some providers
    want back unaltered with the tool turn they led to (signed thinking blocks)."""

    def parts(self) -> tuple[Part, ...]:
        if self.content is None:
            return ()
        if isinstance(self.content, str):
            return (Text(self.content),)
        return self.content


class Tool(msgspec.Struct, frozen=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    cache: CacheMark | None = None


class NamedToolChoice(msgspec.Struct, frozen=True):
    name: str


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class ResponseFormat(msgspec.Struct, frozen=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ImageTask(msgspec.Struct, frozen=True):
    """A request to make images (``/v1/images/generations`` and ``/edits``), not to chat.

    The prompt is also the request's user text and the images to edit its image parts (so
    intake, policy and capabilities see them like any other); with ``mask`` the last image
    part is the mask. Adapters of image APIs (OpenAI's) build their own call from it; chat
    adapters of image models (Gemini's) just answer the message with images.
    """

    prompt: str
    edit: bool = False
    mask: bool = False
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    moderation: str | None = None
    input_fidelity: str | None = None


class StoredItem(msgspec.Struct, frozen=True):
    """A piece of a kept answer that the client names instead of sending it again (the
    Responses API's ``item_reference``), to be filled in before anything reads the request.

    Message ``message`` of the request holds a stand-in at ``slot``: its content (``text``),
    its ``slot``-th tool call (``tool_call``) or thought (``thought``). It is replaced by the
    ``index``-th such piece of answer ``response``; ``param`` names the reference for errors.
    """

    message: int
    part: Literal["text", "tool_call", "thought"]
    slot: int
    response: str
    index: int
    param: str


class Thread(msgspec.Struct, frozen=True):
    """Where a request stands in a conversation the gateway keeps (the Responses API's).

    ``previous`` is the stored answer it continues (``previous_response_id``); ``store`` asks
    for its own answer to be kept; the first ``instructions`` messages came from the request's
    ``instructions``, which apply to this turn only and are never carried on; ``items`` are
    the pieces of kept answers its input names by id.
    """

    previous: str | None = None
    store: bool = True
    instructions: int = 0
    items: tuple[StoredItem, ...] = ()


class ChatRequest(msgspec.Struct, frozen=True):
    """A chat request after parsing, whatever dialect it arrived in.

    ``extra`` holds top-level fields the dialect does not model, still encoded as JSON, so
    an OpenAI-compatible upstream receives what the client sent instead of losing it.
    """

    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: int | None = None
    logprobs: bool = False
    """The client asked for the log probabilities of the answer's tokens."""
    top_logprobs: int | None = None
    """How many of the likeliest alternatives at each position (with ``logprobs``)."""
    user: str | None = None
    tools: tuple[Tool, ...] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    stream: bool = False
    include_usage: bool = False
    extra: dict[str, msgspec.Raw] = msgspec.field(default_factory=dict)
    image_task: ImageTask | None = None
    thread: Thread | None = None
    """Set by the Responses dialect, unless the request neither continues nor is kept."""
    reasoning: Reasoning | None = None
    """Anthropic's ``thinking`` or OpenAI's reasoning effort; None: the model's default."""
    cache: CacheMark | None = None
    """Automatic prompt caching (Anthropic's top-level ``cache_control``): a breakpoint after
    the last cacheable block, wherever that is."""

    @property
    def wants_reasoning(self) -> bool:
        return self.reasoning is not None and self.reasoning.enabled

    def modalities(self) -> tuple[str, ...]:
        """What the client asked the answer to hold (OpenAI's ``modalities``, kept in
        ``extra`` so an OpenAI-wire upstream still receives it as sent); ``()`` when unasked."""
        raw = self.extra.get("modalities")
        if raw is None:
            return ()
        try:
            value = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return ()
        if not isinstance(value, list):
            return ()
        return tuple(v for v in value if isinstance(v, str))

    @property
    def wants_images(self) -> bool:
        return self.image_task is not None or "image" in self.modalities()

    def files(self) -> list[tuple[int, int, File]]:
        """Every document with the indexes of its message and part, in request order."""
        if all(isinstance(m.content, str | None) for m in self.messages):
            return []
        return [
            (m, p, part)
            for m, message in enumerate(self.messages)
            if not isinstance(message.content, str | None)
            for p, part in enumerate(message.content)
            if isinstance(part, File)
        ]

    def images(self) -> list[tuple[int, int, Image]]:
        """Every image with the indexes of its message and part, in request order."""
        if all(isinstance(m.content, str | None) for m in self.messages):
            return []  # the common text-only request: no per-part walk
        return [
            (m, p, part)
            for m, message in enumerate(self.messages)
            if not isinstance(message.content, str | None)
            for p, part in enumerate(message.content)
            if isinstance(part, Image)
        ]
