"""Image intake: strict base64, the real format from the bytes (sniffed by ``media/``), limits
from headers, normalisation and token estimates.

The only package that imports Pillow.
"""

from aperture.images.intake import (
    ImageLimits,
    Inspected,
    data_uri_for,
    inspect_bytes,
    inspect_data_uri,
)

__all__ = [
    "ImageLimits",
    "Inspected",
    "data_uri_for",
    "inspect_bytes",
    "inspect_data_uri",
]
