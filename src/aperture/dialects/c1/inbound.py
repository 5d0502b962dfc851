"""``/c1/chat`` request JSON -> canonical ``ChatRequest``. Pure.

The shortcut takes ``message`` (a string or an OpenAI content-parts array) and
``images: [{"url": ...}]``, and is rebuilt into one user message whose parts are the
message's text or parts followed by the images, exactly as if the client had sent the
content-parts array itself.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from aperture.dialects.decoding import decode_request
from aperture.dialects.openai import wire
from aperture.dialects.openai.inbound import extra_fields, to_chat_request
from aperture.media.payloads import Payloads
from aperture.model import ChatRequest

__all__ = ["C1Locator", "parse_c1_request"]


class C1Image(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class C1ChatRequest(msgspec.Struct, kw_only=True):
    model: str
    message: str | list[wire.ContentPart]
    images: list[C1Image] = []
    system: str | None = None
    tools: list[wire.ToolDefinition] | None = None
    tool_choice: Literal["auto", "none", "required"] | wire.NamedToolChoiceWire | None = None
    response_format: wire.ResponseFormatWire | None = None
    stream: bool | None = None
    stream_options: wire.StreamOptions | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


_MODELLED = frozenset(f.encode_name for f in msgspec.structs.fields(C1ChatRequest))
_DECODER = msgspec.json.Decoder(C1ChatRequest)


class C1Locator:
    """Maps the rebuilt message back to ``message[i]`` or ``images[i].url``."""

    max_tokens = "max_tokens"
    reasoning = "reasoning"
    logprobs = "logprobs"
    image_output = "modalities"

    def __init__(self, *, has_system: bool, message_parts: int | None) -> None:
        self._user_index = 1 if has_system else 0
        # A string message becomes one text part; a parts array keeps its own length.
        self._parts = 1 if message_parts is None else message_parts
        self._string = message_parts is None

    def image(self, message: int, part: int) -> str:
        if message == self._user_index and part >= self._parts:
            return f"images[{part - self._parts}].url"
        return f"{self.part(message, part)}.image_url.url"

    def part(self, message: int, part: int) -> str:
        if message != self._user_index:
            return "system"
        if part >= self._parts:
            return f"images[{part - self._parts}]"
        return "message" if self._string else f"message[{part}]"


def parse_c1_request(
    body: bytes, payloads: Payloads | None = None
) -> tuple[ChatRequest, C1Locator]:
    """Decode a ``/c1/chat`` body into the canonical request and its field locator."""
    request, keys = decode_request(body, _DECODER, payloads)
    parts: list[Any] = (
        [wire.TextPart(text=request.message)]
        if isinstance(request.message, str)
        else list(request.message)
    )
    parts.extend(
        wire.ImageURLPart(image_url=wire.ImageURL(url=image.url, detail=image.detail))
        for image in request.images
    )
    messages: list[wire.RequestMessage] = []
    if request.system is not None:
        messages.append(wire.SystemMessage(content=request.system))
    messages.append(wire.UserMessage(content=parts))
    openai_request = wire.ChatCompletionRequest(
        model=request.model,
        messages=messages,
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stop=request.stop,
        seed=request.seed,
        user=request.user,
        n=request.n,
        logprobs=request.logprobs,
        top_logprobs=request.top_logprobs,
        # An empty tools list (as in the seed's example) means "no tools".
        tools=request.tools or None,
        tool_choice=request.tool_choice if request.tools else None,
        response_format=request.response_format,
        stream=request.stream,
        stream_options=request.stream_options,
    )
    extra = extra_fields(body, keys, _MODELLED)
    locator = C1Locator(
        has_system=request.system is not None,
        message_parts=None if isinstance(request.message, str) else len(request.message),
    )
    return to_chat_request(openai_request, extra), locator
