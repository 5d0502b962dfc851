"""WAV play time from the header alone; anything else is unknown, never zero."""

from __future__ import annotations

import base64
import io
import wave

from aperture.media.duration import wav_seconds, wav_seconds_b64


def real_wav(seconds: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()


def test_a_real_wav() -> None:
    assert wav_seconds(real_wav(1.5)) == 1.5
    assert wav_seconds_b64(base64.b64encode(real_wav(2)).decode()) == 2.0


def test_not_wav_or_not_readable() -> None:
    assert wav_seconds(b"ID3\x04" + b"\0" * 100) is None
    assert wav_seconds(real_wav(1)[:20]) is None
    assert wav_seconds_b64("not base64!") is None
