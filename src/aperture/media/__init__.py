"""What bytes and data URIs are, from their own framing: magic-byte sniffing, container walks
(frames, truncation) and RFC 2397 data URIs.

Pure and dependency-free (no Pillow, no I/O), so the layers below the pipeline can ask too:
the fetcher checks a download is an image, adapters split a data URI. Decoding, limits and
normalisation stay in ``images/``.
"""

from aperture.media.datauri import MIME_ALIASES, DataUri, parse_data_uri
from aperture.media.sniff import NOT_IMAGES, Sniffed, sniff, sniff_non_image

__all__ = [
    "MIME_ALIASES",
    "NOT_IMAGES",
    "DataUri",
    "Sniffed",
    "parse_data_uri",
    "sniff",
    "sniff_non_image",
]
