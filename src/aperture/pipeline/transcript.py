"""A kept conversation as stored: canonical messages, with images as references to blobs.

An image whose bytes the gateway held (a data URI, or a URL it fetched) is stored once, by
the sha256 of its bytes, and written into the transcript as ``sha256:<hex>``; a URL the
provider fetches itself stays a URL. Restored, a reference becomes a data URI again, so the
continued request passes intake, capability checks and normalisation for its new target like
any image a client sends.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
import pybase64

from aperture.model import ChatResponse, File, Image, Message, Part
from aperture.pipeline.context import RequestContext
from aperture.storage import ResponseBlob

__all__ = [
    "REFERENCE",
    "answer_turn",
    "decode",
    "encode",
    "kept_answer",
    "restore",
    "store_images",
]

REFERENCE = "sha256:"

_MESSAGES = msgspec.json.Decoder(tuple[Message, ...])
_encode = msgspec.json.Encoder().encode


def encode(messages: tuple[Message, ...]) -> bytes:
    return _encode(messages)


def decode(data: bytes) -> tuple[Message, ...]:
    return _MESSAGES.decode(data)


def restore(messages: tuple[Message, ...], blobs: Mapping[str, ResponseBlob]) -> list[Message]:
    """``messages`` with each image reference replaced by its data URI.

    Raises:
        KeyError: a referenced blob is missing.
    """
    restored: list[Message] = []
    for message in messages:
        if isinstance(message.content, str | None) or not any(
            isinstance(p, Image) for p in message.content
        ):
            restored.append(message)
            continue
        parts: list[Part] = []
        for part in message.content:
            if isinstance(part, Image) and part.url.startswith(REFERENCE):
                blob = blobs[part.url[len(REFERENCE) :]]
                data = pybase64.b64encode(blob.data).decode()
                part = Image(f"data:{blob.mime};base64,{data}", part.detail)
            parts.append(part)
        restored.append(msgspec.structs.replace(message, content=tuple(parts)))
    return restored


async def store_images(
    ctx: RequestContext, messages: tuple[Message, ...], start: int
) -> tuple[tuple[Message, ...], list[ResponseBlob]] | None:
    """The new turns with their images as references, and the blobs to keep.

    ``start`` is where ``messages`` begin in the request, so intake's bytes are found by
    position. None if an image cannot be kept (its bytes were never held): the turn is then
    not kept at all, rather than kept with a hole in it.
    """
    blobs: list[ResponseBlob] = []
    stored: list[Message] = []
    for i, message in enumerate(messages):
        if isinstance(message.content, str | None):
            stored.append(message)
            continue
        parts: list[Part] = []
        for p, part in enumerate(message.content):
            if isinstance(part, Image):
                at = (start + i, p)
                data = ctx.decoded.get(at)
                if data is not None:
                    digest = await ctx.image_digest(at)
                    blobs.append(ResponseBlob(digest, ctx.images[at].mime, data))
                    part = Image(f"{REFERENCE}{digest}", part.detail)
                elif part.is_data_uri:
                    return None
                else:
                    part = Image(part.url, part.detail)
            elif isinstance(part, File):
                # Intake's findings are not kept: the next turn checks the document again.
                part = File(part.file_id, part.file_data, part.filename, part.url)
            parts.append(part)
        stored.append(msgspec.structs.replace(message, content=tuple(parts)))
    return tuple(stored), blobs


def answer_turn(answer: ChatResponse) -> Message | None:
    """The assistant turn an answer adds to the conversation (its first choice)."""
    if not answer.choices:
        return None
    choice = answer.choices[0]
    text = choice.content or choice.refusal
    if not text and not choice.tool_calls:
        return None
    # Thoughts stay with their turn: Anthropic wants signed ones back with a tool result.
    return Message(
        "assistant",
        text or None,
        tool_calls=choice.tool_calls or None,
        reasoning=choice.reasoning or None,
    )


def kept_answer(answer: ChatResponse) -> ChatResponse:
    """The answer as kept for reading back: its first choice, without generated images."""
    choices = answer.choices[:1]
    return msgspec.structs.replace(
        answer, choices=tuple(msgspec.structs.replace(c, images=None) for c in choices)
    )
