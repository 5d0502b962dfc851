"""Each kind's adapter, its module imported on first use.

Apart from the specs (``registry``, plain data that settings, images and routing read), so
that reading a kind's facts never loads an adapter, its wire types or botocore.
"""

from __future__ import annotations

import importlib
from functools import cache

from aperture.providers.base import Provider
from aperture.providers.registry import spec_for

__all__ = ["provider_for"]


@cache  # adapters are stateless; one instance per kind and wire for the process
def provider_for(kind: str, wire: str | None = None) -> Provider:
    """The adapter for ``kind`` (and the model's ``wire``), its module imported on first use.

    Raises:
        LookupError: an unknown kind, or a wire the kind does not offer.
    """
    module, _, name = spec_for(kind).wire_named(wire).adapter.partition(":")
    adapter: Provider = getattr(importlib.import_module(module), name)()
    return adapter
