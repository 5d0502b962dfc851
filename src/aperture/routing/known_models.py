"""What well-known models can do, from their provider kind's spec, when the config does not say.

Config ``capabilities`` always wins; a model its kind's table does not list is treated as
text-only, so an image is never sent to a model that was not declared able to see it.
"""

from __future__ import annotations

import fnmatch

from aperture.providers.registry import spec_for

__all__ = ["carried_capabilities", "known_capabilities"]


def known_capabilities(kind: str, upstream_model: str) -> frozenset[str] | None:
    """The capabilities of ``upstream_model`` on a provider of ``kind``, if it is known.

    Raises:
        LookupError: no such kind.
    """
    spec = spec_for(kind)
    for pattern, capabilities in spec.known_models:
        if fnmatch.fnmatchcase(upstream_model, pattern):
            # The kinds that read PDFs do so on their vision models.
            if spec.documents is not None and "vision" in capabilities:
                return capabilities | {"documents"}
            return capabilities
    return None


def carried_capabilities(
    kind: str, upstream_model: str, capabilities: frozenset[str], wire: str | None = None
) -> frozenset[str]:
    """What a model with ``capabilities`` can do through its kind's API (``ProviderSpec.carried``):
    an OpenAI model declared for video still cannot get a video through OpenAI's API.

    Raises:
        LookupError: no such kind, or no such wire of it.
    """
    return spec_for(kind).carried(capabilities, upstream_model, wire)
