"""The shape a document takes for one target, and the size its pages are rendered at.

A model that reads PDFs gets the PDF; a vision model without that gets the pages as images
the gateway renders; a text-only model gets the text layer when ``documents.text_only`` is
``extract``. Decided per target at each attempt: one request may go to a native target
first and to a vision-only one on failover.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Literal

__all__ = ["Form", "form_for", "rendered_size"]

Form = Literal["native", "pages", "text"]
# Past 2x (144 dpi) a page gains no detail: its content has no more to show.
MAX_SCALE = 2.0


def form_for(capabilities: Collection[str], *, inline: bool, extract: bool) -> Form | None:
    """How a model with ``capabilities`` can take a document, None if it cannot.

    Only a document whose bytes the gateway holds (``inline``) can be rendered or read; a
    file id or URL is the provider's to resolve.
    """
    if "documents" in capabilities:
        return "native"
    if not inline:
        return None
    if "vision" in capabilities:
        return "pages"
    return "text" if extract else None


def rendered_size(
    width_pt: float, height_pt: float, long_edge: int, max_pixels: int
) -> tuple[int, int, float]:
    """Pixel width, height and scale of a page rendered with its long edge at most
    ``long_edge`` and at most ``max_pixels`` in all (never scaled past ``MAX_SCALE``)."""
    scale = min(long_edge / max(width_pt, height_pt), MAX_SCALE)
    scale = min(scale, math.sqrt(max_pixels / (width_pt * height_pt)))
    # A hair under: the bitmap's sides are rounded up (pypdfium2's PdfPage.render takes the
    # ceiling, as here), and 792 * (1568 / 792) must not come out as 1569.
    scale *= 1 - 1e-9
    return max(1, math.ceil(width_pt * scale)), max(1, math.ceil(height_pt * scale)), scale
