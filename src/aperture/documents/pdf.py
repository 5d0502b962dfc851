"""What PDFium says about a PDF without rendering it: pages, boxes, encryption, text.

Every function here is top-level and returns plain data (never raises for bad input), so it
runs unchanged in a decode worker, where an exception would reach the gateway only as words.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

from aperture.documents.forms import rendered_size

__all__ = [
    "PageBitmap",
    "PdfFacts",
    "PdfProblem",
    "inspect_pdf",
    "page_texts",
    "pdf_text",
    "render_pages",
]

Problem = Literal["malformed", "encrypted", "too_many_pages", "page_too_large"]


def _pdfium() -> tuple[Any, Any]:
    """PDFium, loaded at the first PDF: a gateway that is never sent one never pays the
    quarter-second its import costs at start (and pypdfium2 ships no type information;
    this module is the one place that calls it)."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped]
    import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped]

    return pdfium, pdfium_c


class PdfFacts(NamedTuple):
    pages: int
    sizes: tuple[tuple[float, float], ...] = ()
    """Each page's width and height in points, as the page's box says (not rendered)."""


class PageBitmap(NamedTuple):
    """One rendered page: RGB pixels, ``stride`` bytes a row."""

    pixels: bytes
    width: int
    height: int
    stride: int


class PdfProblem(NamedTuple):
    problem: Problem
    detail: str


def inspect_pdf(data: bytes, max_pages: int, max_side_pt: float) -> PdfFacts | PdfProblem:
    """Count the pages and check their boxes; no page's content is parsed.

    Loading reads the cross-reference table and trailer; the page count walks the page tree
    only; a page size is read from the page's dictionary. So a file claiming thousands of
    pages, or pages a mile wide, is refused for the cost of reading its skeleton.
    """
    pdfium, pdfium_c = _pdfium()
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            return PdfProblem("encrypted", "the PDF is password-protected")
        return PdfProblem("malformed", "PDFium cannot read it (damaged or not a PDF)")
    try:
        # -1 means no security handler; any other revision is an encrypted file, which the
        # providers refuse even when it opens without a password.
        if pdfium_c.FPDF_GetSecurityHandlerRevision(document.raw) != -1:
            return PdfProblem("encrypted", "the PDF is encrypted")
        pages: int = len(document)
        if pages <= 0:
            return PdfProblem("malformed", "the PDF has no pages")
        if pages > max_pages:
            return PdfProblem("too_many_pages", f"{pages}")
        sizes: list[tuple[float, float]] = []
        for index in range(pages):
            width: float
            height: float
            width, height = document.get_page_size(index)
            if not (0 < width <= max_side_pt and 0 < height <= max_side_pt):
                return PdfProblem(
                    "page_too_large",
                    f"page {index + 1} is {width:.0f}x{height:.0f} points "
                    f"(the limit is {max_side_pt:.0f} a side)",
                )
            sizes.append((float(width), float(height)))
        return PdfFacts(pages, tuple(sizes))
    finally:
        document.close()


def pdf_text(data: bytes, max_pages: int, max_chars: int) -> str:
    """The text layer of the first ``max_pages`` pages, at most ``max_chars`` characters.

    Pages are separated by a form feed, the way ``pdftotext`` marks them. A page whose text
    cannot be read contributes nothing: the text layer is for reading, not for proof.
    """
    return "\f".join(page_texts(data, max_pages, max_chars))[:max_chars]


def page_texts(data: bytes, max_pages: int, max_chars: int) -> tuple[str, ...]:
    """The text layer of each of the first ``max_pages`` pages (an empty string for a page
    without one, a scan), stopping once ``max_chars`` characters are read."""
    pdfium, _ = _pdfium()
    out: list[str] = []
    size = 0
    document = pdfium.PdfDocument(data)
    try:
        for index in range(min(len(document), max_pages)):
            page = document[index]
            try:
                textpage = page.get_textpage()
                try:
                    text: str = textpage.get_text_range()
                finally:
                    textpage.close()
            finally:
                page.close()
            out.append(text.replace("\r\n", "\n").strip())
            size += len(text) + 1
            if size >= max_chars:
                break
    finally:
        document.close()
    return tuple(out)


def render_pages(
    data: bytes, pages: tuple[int, ...], long_edge: int, max_pixels: int
) -> Iterator[PageBitmap]:
    """Each of ``pages`` (0-based) rendered on white with its long edge at most ``long_edge``
    pixels and at most ``max_pixels`` in all, one at a time (a caller encoding each before
    the next keeps one bitmap in memory). Never scaled up past 2x (144 dpi): a small page
    gains nothing from more pixels than its content has."""
    pdfium, _ = _pdfium()
    document = pdfium.PdfDocument(data)
    try:
        for index in pages:
            page = document[index]
            try:
                width, height = page.get_size()
                _, _, scale = rendered_size(width, height, long_edge, max_pixels)
                bitmap = page.render(
                    scale=scale, fill_color=(255, 255, 255, 255), rev_byteorder=True
                )
                try:
                    yield PageBitmap(
                        bytes(bitmap.buffer), bitmap.width, bitmap.height, bitmap.stride
                    )
                finally:
                    bitmap.close()
            finally:
                page.close()
    finally:
        document.close()
