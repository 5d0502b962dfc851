"""What a request will cost before it is sent: the figure budgets and token limits admit on.

Deliberately an over- rather than an under-estimate: text at four characters a token plus
per-message framing, each image at the highest estimate among the targets that may serve it,
and the whole ``max_tokens`` of output. The provider's reported usage replaces it when the
request ends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from aperture.documents.forms import Form, rendered_size
from aperture.images.limits import TargetImageLimits
from aperture.images.tokens import estimate_image_tokens, token_family
from aperture.model import ChatRequest, Image, InlineImage, Target, Text
from aperture.providers.registry import spec_for
from aperture.routing.catalog import TargetOption

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "document_tokens",
    "image_tokens",
    "output_tokens",
    "page_long_edge",
    "text_tokens",
]

# What a request without max_tokens is assumed to produce (Anthropic needs the field and
# Aperture sends 4096 there; other providers' defaults are of the same order).
DEFAULT_OUTPUT_TOKENS = 4096
_CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD = 4
# An image whose size the gateway never saw (a passed-through URL) counts as 1024 × 1024.
_UNSEEN_SIDE = 1024
# A page whose text the gateway has not read, sent as text: Anthropic's low figure.
_TEXT_PAGE_TOKENS = 1500


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


def page_long_edge(limits: TargetImageLimits, image_count: int) -> int:
    """The long edge, in pixels, a target's model sees an image at: the resolution a page
    is rendered at for it (more would be downscaled by the provider, unread)."""
    edge = limits.max_side_for(image_count)
    if limits.effective_long_edge is not None:
        edge = min(edge, limits.effective_long_edge)
    return edge


def document_tokens(
    form: Form,
    target: Target,
    sizes: Sequence[tuple[float, float]],
    limits: TargetImageLimits,
    *,
    image_count: int,
    max_pixels: int,
    text_chars: int | None = None,
) -> int:
    """Input tokens of one document of pages ``sizes`` (points) sent to ``target`` as
    ``form``: pages times the provider's rule for a PDF it reads (``DocumentLimits``), the
    rendered pages as images, or the text layer (``text_chars`` characters, when read)."""
    if form == "text":
        if text_chars is None:
            return _TEXT_PAGE_TOKENS * len(sizes)
        return math.ceil(text_chars / _CHARS_PER_TOKEN)
    model = target.upstream_model
    rule = spec_for(target.provider.kind).documents if form == "native" else None
    if rule is not None:
        flat = rule.flat_page_tokens(model)
        if flat is not None:
            return flat * len(sizes)
        if not rule.pages_as_images:
            return rule.text_tokens_per_page * len(sizes)
    family = token_family(target.provider.kind, model)
    edge = page_long_edge(limits, image_count)
    total = 0
    for width_pt, height_pt in sizes:
        width, height, _ = rendered_size(width_pt, height_pt, edge, max_pixels)
        total += estimate_image_tokens(family, width, height, model=model)
    if rule is not None:
        total += rule.text_tokens_per_page * len(sizes)
    return total
