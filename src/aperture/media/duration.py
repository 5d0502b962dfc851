"""How long an audio clip plays, read from its header without decoding the samples.

Only WAV (RIFF ``WAVE``) states its length reliably in a few header bytes: ``fmt ``'s byte
rate and the ``data`` chunk's size. MP3, AAC, OGG and FLAC would need frame walking or
stream-info parsing (VBR MP3 without a Xing header: every frame), and video containers keep
their duration in a box that may sit at the end of the file, so their length is not checked:
``None`` means unknown, never zero.
"""

from __future__ import annotations

import base64
import binascii
import struct

__all__ = ["HEADER_B64_CHARS", "wav_seconds", "wav_seconds_b64"]

HEADER_B64_CHARS = 4096
"""How much of a base64 payload is decoded to find the WAV header chunks (3 KiB)."""


def wav_seconds(head: bytes) -> float | None:
    """The play time of a WAV file from its first bytes; None when not WAV or not found there."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset, byte_rate = 12, 0
    while offset + 8 <= len(head):
        chunk = head[offset : offset + 4]
        size: int = struct.unpack_from("<I", head, offset + 4)[0]
        if chunk == b"fmt " and offset + 20 <= len(head):
            byte_rate = int(struct.unpack_from("<I", head, offset + 16)[0])
        elif chunk == b"data":
            # A streamed WAV may leave the size as 0 or 0xFFFFFFFF: unknown length then.
            if byte_rate <= 0 or size in (0, 0xFFFFFFFF):
                return None
            return size / byte_rate
        offset += 8 + size + (size & 1)
    return None


def wav_seconds_b64(payload: str) -> float | None:
    """``wav_seconds`` of a base64 payload, decoding only its first ``HEADER_B64_CHARS``."""
    prefix = payload[: HEADER_B64_CHARS - HEADER_B64_CHARS % 4]
    try:
        head = base64.b64decode(prefix, validate=True)
    except (binascii.Error, ValueError):
        return None
    return wav_seconds(head)
