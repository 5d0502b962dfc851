"""Optional OCR: the text rendered inside an image, so that PII rules, policy and guardrails
read it too.

It runs the ``tesseract`` binary through ``pytesseract``, neither of which is a required
dependency (``apt install tesseract-ocr``; ``pip install 'aperture[ocr]'``): ``availability``
says at start-up what is missing, and ``read`` raises ``OcrError`` rather than crash the
request. Decoding, downscaling and tesseract run in a worker thread, bounded in time.
"""

from __future__ import annotations

import importlib
import shutil
import time
from types import ModuleType

import anyio

from aperture.images.grayscale import grayscale
from aperture.settings.governance import OcrSettings

__all__ = ["OcrError", "OcrReader", "OcrTimeoutError"]

_INSTALL_HINT = "apt install tesseract-ocr; pip install 'aperture[ocr]'"
# Beyond the thread's own deadline (tesseract is killed at it), how long ``read`` waits for
# the thread before giving up on it: decoding may overrun a little.
_GRACE_S = 1.0


class OcrError(Exception):
    """OCR could not read an image: tesseract is missing or failed, or the image is bad."""


class OcrTimeoutError(OcrError):
    """OCR took longer than ``governance.ocr.timeout_s``."""


class OcrReader:
    """Reads text from images with tesseract, as ``OcrSettings`` says.

    ``limiter`` bounds the worker threads (share the app's image limiter, so that OCR and
    image normalisation together never use more threads than it allows).
    """

    __slots__ = ("_limiter", "_settings")

    def __init__(
        self, settings: OcrSettings, *, limiter: anyio.CapacityLimiter | None = None
    ) -> None:
        self._settings = settings
        self._limiter = limiter

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    def availability(self) -> str | None:
        """None if OCR can run here, else one line saying what is missing and how to fix it.

        Runs ``tesseract --list-langs`` (a few milliseconds): call it once, at start-up.
        """
        prefix = (
            "governance.ocr is enabled but" if self._settings.enabled else "OCR is unavailable:"
        )
        try:
            pytesseract = _pytesseract()
        except OcrError:
            return f"{prefix} the pytesseract package is not installed ({_INSTALL_HINT})"
        if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
            return f"{prefix} the tesseract binary is not installed ({_INSTALL_HINT})"
        try:
            installed = set(pytesseract.get_languages())
        except (OSError, pytesseract.TesseractError) as exc:
            return f"{prefix} tesseract does not run: {exc}"
        missing = [lang for lang in self._settings.languages.split("+") if lang not in installed]
        if missing:
            packages = " ".join(f"tesseract-ocr-{lang}" for lang in missing)
            return (
                f"{prefix} tesseract has no data for the language(s) {', '.join(missing)} "
                f"(apt install {packages})"
            )
        return None

    async def read(self, data: bytes) -> str:
        """The text in the image ``data`` (any format intake accepts), stripped.

        Raises ``OcrTimeoutError`` past ``timeout_s`` and ``OcrError`` for anything else
        that stops it (no tesseract, an undecodable image, tesseract failing).
        """
        timeout = self._settings.timeout_s
        with anyio.move_on_after(timeout + _GRACE_S):
            # Abandoned on timeout or cancellation: the thread then finishes on its own, and
            # tesseract is killed at the deadline it was given.
            return await anyio.to_thread.run_sync(
                self._read, data, limiter=self._limiter, abandon_on_cancel=True
            )
        # Only this scope's own deadline ends up here; any outer cancellation propagates.
        raise OcrTimeoutError(f"OCR took longer than {timeout:g}s")

    def _read(self, data: bytes) -> str:
        deadline = time.monotonic() + self._settings.timeout_s
        try:
            image = grayscale(data, self._settings.max_pixels)
        except ValueError as exc:
            raise OcrError("the image cannot be decoded for OCR") from exc
        pytesseract = _pytesseract()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OcrTimeoutError(f"OCR took longer than {self._settings.timeout_s:g}s")
        try:
            text = pytesseract.image_to_string(
                image, lang=self._settings.languages, timeout=remaining
            )
        except pytesseract.TesseractNotFoundError as exc:
            raise OcrError(f"the tesseract binary is not installed ({_INSTALL_HINT})") from exc
        except pytesseract.TesseractError as exc:
            raise OcrError(f"tesseract failed: {exc.message}") from exc
        except RuntimeError as exc:  # pytesseract's only signal that it killed tesseract
            raise OcrTimeoutError(f"OCR took longer than {self._settings.timeout_s:g}s") from exc
        return str(text).strip()


def _pytesseract() -> ModuleType:
    # Imported here, not at the top: it is an optional extra.
    try:
        return importlib.import_module("pytesseract")
    except ImportError as exc:
        raise OcrError(f"the pytesseract package is not installed ({_INSTALL_HINT})") from exc
