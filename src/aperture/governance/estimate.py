"""What a request will cost before it is sent: the figure budgets and token limits admit on.

Deliberately an over- rather than an under-estimate: text at four characters a token plus
per-message framing, each image at the highest estimate among the targets that may serve it,
and the whole ``max_tokens`` of output. The provider's reported usage replaces it when the
request ends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from aperture.images.tokens import estimate_image_tokens, token_family
from aperture.model import ChatRequest, Image, InlineImage, Text
from aperture.routing.catalog import TargetOption

__all__ = ["DEFAULT_OUTPUT_TOKENS", "image_tokens", "output_tokens", "text_tokens"]

# What a request without max_tokens is assumed to produce (Anthropic needs the field and
# Aperture sends 4096 there; other providers' defaults are of the same order).
DEFAULT_OUTPUT_TOKENS = 4096
_CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD = 4
# An image whose size the gateway never saw (a passed-through URL) counts as 1024 × 1024.
_UNSEEN_SIDE = 1024


def text_tokens(request: ChatRequest) -> int:
    """Input tokens of the text, tool definitions and tool calls of ``request``."""
    chars = 0
    for message in request.messages:
        for part in message.parts():
            if isinstance(part, Text):
                chars += len(part.text)
        for call in message.tool_calls or ():
            chars += len(call.name) + len(call.arguments)
    for tool in request.tools or ():
        chars += len(tool.name) + len(tool.description or "") + len(str(tool.parameters or ""))
    return math.ceil(chars / _CHARS_PER_TOKEN) + _MESSAGE_OVERHEAD * len(request.messages)


def output_tokens(request: ChatRequest) -> int:
    return request.max_tokens if request.max_tokens is not None else DEFAULT_OUTPUT_TOKENS


def image_tokens(
    request: ChatRequest,
    seen: Mapping[tuple[int, int], InlineImage],
    options: Sequence[TargetOption],
) -> int:
    """The images' input tokens at the most expensive of ``options`` (0 without images)."""
    images = _images(request)
    if not images or not options:
        return 0
    best = 0
    for option in options:
        target = option.target
        family = token_family(target.provider.kind, target.upstream_model)
        total = 0
        for at, image in images:
            info = seen.get(at)
            width, height = (info.width, info.height) if info else (_UNSEEN_SIDE, _UNSEEN_SIDE)
            total += estimate_image_tokens(
                family, width, height, image.detail, model=target.upstream_model
            )
        best = max(best, total)
    return best


def _images(request: ChatRequest) -> list[tuple[tuple[int, int], Image]]:
    return [
        ((m, p), part)
        for m, message in enumerate(request.messages)
        for p, part in enumerate(message.parts())
        if isinstance(part, Image)
    ]
