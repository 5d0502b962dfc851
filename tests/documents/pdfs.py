"""PDFs made in the tests: blank pages from PDFium, and pages of text written by hand."""

from __future__ import annotations

import io

import pypdfium2 as pdfium


def blank_pdf(pages: int = 1, size: tuple[float, float] = (612, 792)) -> bytes:
    document = pdfium.PdfDocument.new()
    for _ in range(pages):
        document.new_page(*size)
    out = io.BytesIO()
    document.save(out)
    document.close()
    return out.getvalue()


def text_pdf(*pages: str, size: tuple[int, int] = (612, 792)) -> bytes:
    """One page per string, each line in 18 pt Helvetica (a text layer PDFium reads back)."""
    count = len(pages)
    # Objects: 1 catalog, 2 pages, 3 font, then a page and its content stream per page.
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(count))
        + b"] /Count %d >>" % count,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        lines = [
            b"(" + line.encode("latin-1").replace(b"\\", b"\\\\").replace(b"(", b"\\(")
            .replace(b")", b"\\)") + b") Tj 0 -24 Td"
            for line in text.splitlines()
        ]  # fmt: skip
        stream = b"BT /F1 18 Tf 72 %d Td " % (size[1] - 72) + b" ".join(lines) + b" ET"
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] " % size
            + b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
