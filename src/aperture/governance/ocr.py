"""Optional OCR: the text rendered inside an image, so that PII rules, policy and guardrails
read it too.

It runs the ``tesseract`` binary through ``pytesseract``, neither of which is a required
dependency (``apt install tesseract-ocr``; ``pip install 'aperture[ocr]'``): ``availability``
says at start-up what is missing, and ``read`` raises ``OcrError`` rather than crash the
request. Decoding and downscaling run in the app's decode pool (a child process under a
memory and CPU ceiling, see images/workers.py), so that a PNG just under the pixel limit or
a bomb costs a worker, never the server's memory; tesseract, a process of its own, is driven
from a thread. Both are bounded in time.
"""

from __future__ import annotations

import importlib
import shutil
import time
from types import ModuleType

import anyio

from aperture.images.grayscale import GrayPixels, grayscale_pixels
from aperture.images.workers import DecodeFailed, DecodePool
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

    ``decoder`` is the app's decode pool, shared with image normalisation; without one
    (``images.decode.workers: 0``) images are decoded in a thread, with no memory ceiling.
    ``limiter`` bounds the worker threads (share the app's image limiter, so that OCR and
    image normalisation together never use more threads than it allows).
    """

    __slots__ = ("_decoder", "_limiter", "_settings")

    def __init__(
        self,
        settings: OcrSettings,
        *,
        limiter: anyio.CapacityLimiter | None = None,
        decoder: DecodePool | None = None,
    ) -> None:
        self._settings = settings
        self._limiter = limiter
        self._decoder = decoder

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
        that stops it (no tesseract, an undecodable image or one over the decode pool's
        ceilings, tesseract failing).
        """
        timeout = self._settings.timeout_s
        deadline = time.monotonic() + timeout
        with anyio.move_on_after(timeout + _GRACE_S):
            # Cancelled at the deadline, a decode in the pool kills its worker; the thread
            # that drives tesseract is abandoned and tesseract killed at the deadline given.
            image = await self._decode(data)
            return await anyio.to_thread.run_sync(
                self._recognise, image, deadline, limiter=self._limiter, abandon_on_cancel=True
            )
        # Only this scope's own deadline ends up here; any outer cancellation propagates.
        raise OcrTimeoutError(f"OCR took longer than {timeout:g}s")

    async def _decode(self, data: bytes) -> GrayPixels:
        max_pixels = self._settings.max_pixels
        if self._decoder is None:
            return await anyio.to_thread.run_sync(
                _decoded, data, max_pixels, limiter=self._limiter, abandon_on_cancel=True
            )
        try:
            return await self._decoder.run(grayscale_pixels, data, max_pixels)
        except DecodeFailed as exc:
            raise _decode_failure(exc) from exc

    def _recognise(self, gray: GrayPixels, deadline: float) -> str:
        pytesseract = _pytesseract()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OcrTimeoutError(f"OCR took longer than {self._settings.timeout_s:g}s")
        try:
            text = pytesseract.image_to_string(
                gray.image(), lang=self._settings.languages, timeout=remaining
            )
        except pytesseract.TesseractNotFoundError as exc:
            raise OcrError(f"the tesseract binary is not installed ({_INSTALL_HINT})") from exc
        except pytesseract.TesseractError as exc:
            raise OcrError(f"tesseract failed: {exc.message}") from exc
        except RuntimeError as exc:  # pytesseract's only signal that it killed tesseract
            raise OcrTimeoutError(f"OCR took longer than {self._settings.timeout_s:g}s") from exc
        return str(text).strip()


def _decoded(data: bytes, max_pixels: int) -> GrayPixels:
    try:
        return grayscale_pixels(data, max_pixels)
    except ValueError as exc:
        raise OcrError("the image cannot be decoded for OCR") from exc
    except MemoryError as exc:
        raise OcrError("decoding the image for OCR needs more memory than there is") from exc


def _decode_failure(failure: DecodeFailed) -> OcrError:
    match failure.kind:
        case "memory":
            return OcrError(f"decoding the image for OCR needs {failure.detail} of memory")
        case "cpu":
            return OcrError(f"decoding the image for OCR needs {failure.detail}")
        case "crashed":
            return OcrError(f"the image cannot be decoded for OCR: {failure.detail}")
        case _:
            return OcrError("the image cannot be decoded for OCR")


def _pytesseract() -> ModuleType:
    # Imported here, not at the top: it is an optional extra.
    try:
        return importlib.import_module("pytesseract")
    except ImportError as exc:
        raise OcrError(f"the pytesseract package is not installed ({_INSTALL_HINT})") from exc
