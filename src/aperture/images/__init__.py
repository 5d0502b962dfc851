"""Image intake: data URIs, strict base64, the real format from the bytes, limits from headers.

The only package that imports Pillow.
"""

from aperture.images.datauri import DataUri, parse_data_uri
from aperture.images.intake import (
    ImageLimits,
    Inspected,
    data_uri_for,
    inspect_bytes,
    inspect_data_uri,
)
from aperture.images.sniff import Sniffed, sniff

__all__ = [
    "DataUri",
    "ImageLimits",
    "Inspected",
    "Sniffed",
    "data_uri_for",
    "inspect_bytes",
    "inspect_data_uri",
    "parse_data_uri",
    "sniff",
]
