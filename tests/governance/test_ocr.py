"""OCR of images: availability reporting, the missing-binary path, decoding in the
memory-capped decode pool, and (where tesseract is installed) reading text rendered into a
PNG."""

from __future__ import annotations

import importlib.util
import io
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from PIL import Image, ImageDraw, ImageFont

from aperture.governance.ocr import OcrError, OcrReader, OcrTimeoutError
from aperture.governance.pii import PiiScanner
from aperture.images.workers import DecodePool
from aperture.settings.governance import OcrSettings, PiiSettings
from tests.images.test_workers import zero_png

HAS_PYTESSERACT = importlib.util.find_spec("pytesseract") is not None
HAS_TESSERACT = shutil.which("tesseract") is not None
needs_tesseract = pytest.mark.skipif(
    not (HAS_PYTESSERACT and HAS_TESSERACT),
    reason="OCR needs the tesseract binary and pytesseract "
    "(apt install tesseract-ocr; pip install 'aperture[ocr]')",
)
ENABLED = OcrSettings(enabled=True)
# 64 MP of RGB zeros: a 200 KB PNG whose decode needs about 256 MB (RGB, then grayscale).
BOMB = zero_png(8000, 8000)
POOL_MB = 150


@pytest.fixture
def pool() -> Iterator[DecodePool]:
    decoder = DecodePool(workers=1, memory_mb=POOL_MB, cpu_s=10)
    yield decoder
    decoder.close()


def peak_rss_reset() -> bool:
    """Reset this process's peak RSS (Linux ``clear_refs``); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert found is not None
    return int(found.group(1)) / 1024


def _png(text: str, *, width: int = 1400, height: int = 200) -> bytes:
    image = Image.new("L", (width, height), 255)
    font = ImageFont.load_default(size=72)
    ImageDraw.Draw(image).text((30, 50), text, fill=0, font=font)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_missing_binary_is_reported_and_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no tesseract on PATH
    reader = OcrReader(ENABLED)
    reason = reader.availability()
    assert reason is not None
    if HAS_PYTESSERACT:
        assert reason == (
            "governance.ocr is enabled but the tesseract binary is not installed "
            "(apt install tesseract-ocr; pip install 'aperture[ocr]')"
        )
    with pytest.raises(OcrError, match="not installed") as caught:
        anyio.run(reader.read, _png("hello"))
    assert type(caught.value) is OcrError


def test_missing_pytesseract_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pytesseract", None)  # makes the import fail
    assert OcrReader(ENABLED).availability() == (
        "governance.ocr is enabled but the pytesseract package is not installed "
        "(apt install tesseract-ocr; pip install 'aperture[ocr]')"
    )
    assert OcrReader(OcrSettings()).availability() == (
        "OCR is unavailable: the pytesseract package is not installed "
        "(apt install tesseract-ocr; pip install 'aperture[ocr]')"
    )
    with pytest.raises(OcrError, match="pytesseract"):
        anyio.run(OcrReader(ENABLED).read, _png("hello"))


def test_bytes_that_are_not_an_allowed_image_are_an_ocr_error() -> None:
    reader = OcrReader(ENABLED)
    with pytest.raises(OcrError, match="cannot be decoded"):
        anyio.run(reader.read, b"%PDF-1.7 not an image")
    with pytest.raises(OcrError, match="cannot be decoded"):
        anyio.run(reader.read, b"\x89PNG\r\n\x1a\n truncated")


@needs_tesseract
def test_availability_is_none_when_tesseract_and_the_language_are_installed() -> None:
    assert OcrReader(ENABLED).availability() is None


@needs_tesseract
def test_a_missing_language_is_named_with_its_package() -> None:
    reason = OcrReader(OcrSettings(enabled=True, languages="eng+xyz")).availability()
    assert reason == (
        "governance.ocr is enabled but tesseract has no data for the language(s) xyz "
        "(apt install tesseract-ocr-xyz)"
    )


@needs_tesseract
def test_reads_rendered_text_that_pii_scanning_then_finds() -> None:
    text = anyio.run(OcrReader(ENABLED).read, _png("Call me at 212-555-0123"))
    assert "212-555-0123" in text
    scanner = PiiScanner(PiiSettings(detectors=("phone",)))
    assert [f.kind for f in scanner.scan(text)] == ["phone"]


@needs_tesseract
def test_large_images_are_downscaled_before_ocr() -> None:
    # 1400x200 = 280,000 pixels, read at a quarter of that.
    reader = OcrReader(OcrSettings(enabled=True, max_pixels=70_000))
    assert "555" in anyio.run(reader.read, _png("Call 212-555-0123"))


@needs_tesseract
def test_ocr_past_its_timeout_is_an_ocr_timeout() -> None:
    reader = OcrReader(OcrSettings(enabled=True, timeout_s=0.001))
    with pytest.raises(OcrTimeoutError, match=r"longer than 0\.001s"):
        anyio.run(reader.read, _png("x " * 40, width=3000, height=2000))


def test_a_bomb_costs_a_decode_worker_its_memory_not_this_process(pool: DecodePool) -> None:
    reader = OcrReader(ENABLED, decoder=pool)
    measured = peak_rss_reset()
    before = peak_rss_mb() if measured else 0.0
    with pytest.raises(OcrError, match=rf"needs more than {POOL_MB} MB of memory"):
        anyio.run(reader.read, BOMB)
    if measured:
        # Decoded here it would have raised the peak by 250 MB or more.
        assert peak_rss_mb() - before < 100
    # The pool replaced its worker: the next image decodes (and fails only for what it is).
    with pytest.raises(OcrError, match="cannot be decoded"):
        anyio.run(reader.read, b"\x89PNG\r\n\x1a\n truncated")


@needs_tesseract
def test_reads_text_decoded_in_the_pool(pool: DecodePool) -> None:
    reader = OcrReader(ENABLED, decoder=pool)
    assert "212-555-0123" in anyio.run(reader.read, _png("Call me at 212-555-0123"))
