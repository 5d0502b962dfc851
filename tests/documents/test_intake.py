"""Document intake: strict base64, %PDF-, bytes, pages, page boxes and encryption."""

from __future__ import annotations

import base64
import io

import pypdfium2 as pdfium
import pytest

from aperture.documents import PdfFacts, PdfProblem, decode_document, inspect_pdf
from aperture.errors import DocumentDecodeError, DocumentTooLargeError


def make_pdf(pages: int = 1, size: tuple[float, float] = (612, 792)) -> bytes:
    document = pdfium.PdfDocument.new()
    for _ in range(pages):
        document.new_page(*size)
    out = io.BytesIO()
    document.save(out)
    document.close()
    return out.getvalue()


def encrypted_pdf() -> bytes:
    """A hand-written PDF whose trailer names a standard security handler (RC4, R2)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        b"<< /Filter /Standard /V 1 /R 2 /O <" + b"41" * 32 + b"> /U <" + b"42" * 32
        + b"> /P -4 >>",
    ]  # fmt: skip
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 4 0 R " % (len(objects) + 1)
    out += b"/ID [<00112233445566778899aabbccddeeff> <00112233445566778899aabbccddeeff>] >>\n"
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def uri(data: bytes, mime: str = "application/pdf") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_a_pdf_is_decoded_and_counted() -> None:
    data = make_pdf(3)
    decoded = decode_document(uri(data, "application/octet-stream"), 10**6, param="p")
    assert decoded.uri.startswith("data:application/pdf;base64,")
    assert decoded.data == data
    assert inspect_pdf(decoded.data, 100, 14400) == PdfFacts(3, ((612.0, 792.0),) * 3)


def test_not_a_pdf_and_bad_base64_are_refused_with_the_param() -> None:
    with pytest.raises(DocumentDecodeError) as bad:
        decode_document("data:application/pdf;base64,@@@@", 10**6, param="messages[0]")
    assert bad.value.param == "messages[0]"
    with pytest.raises(DocumentDecodeError, match="not a PDF"):
        decode_document(uri(b"\x89PNG\r\n\x1a\n" + b"0" * 40), 10**6, param="p")
    with pytest.raises(DocumentDecodeError):
        decode_document("JVBERi0=", 10**6, param="p")


def test_the_byte_limit_is_checked_before_decoding() -> None:
    with pytest.raises(DocumentTooLargeError):
        decode_document("data:application/pdf;base64," + "A" * 4000, 1000, param="p")


def test_a_page_bomb_is_refused_from_its_page_tree() -> None:
    problem = inspect_pdf(make_pdf(3000), 100, 14400)
    assert isinstance(problem, PdfProblem) and problem.problem == "too_many_pages"
    assert problem.detail == "3000"


def test_huge_page_boxes_are_refused() -> None:
    problem = inspect_pdf(make_pdf(1, (200_000, 200_000)), 100, 14400)
    assert isinstance(problem, PdfProblem) and problem.problem == "page_too_large"


def test_encrypted_and_malformed_pdfs_are_refused() -> None:
    problem = inspect_pdf(encrypted_pdf(), 100, 14400)
    assert isinstance(problem, PdfProblem) and problem.problem == "encrypted"
    broken = inspect_pdf(b"%PDF-1.4\n garbage", 100, 14400)
    assert isinstance(broken, PdfProblem) and broken.problem == "malformed"


def test_each_kind_takes_documents_only_within_its_own_limits() -> None:
    from typing import NamedTuple

    from aperture.errors import TooManyPagesError
    from aperture.model import Target
    from aperture.pipeline.documents import within_provider_limits
    from aperture.settings import ProviderSettings

    class Option(NamedTuple):
        target: Target

        def can(self, capability: str) -> bool:
            return capability == "documents"

    def option(kind: str) -> Option:
        return Option(Target(ProviderSettings(name=kind, kind=kind), "m"))

    bedrock, gemini = option("bedrock"), option("gemini")
    # Bedrock reads 4.5 MB a document, Gemini 20 MB: a 10 MB PDF goes to Gemini only.
    assert within_provider_limits((bedrock, gemini), pages=5, largest=10_000_000) == (gemini,)
    with pytest.raises(DocumentTooLargeError):
        within_provider_limits((bedrock,), pages=5, largest=10_000_000)
    with pytest.raises(TooManyPagesError):
        within_provider_limits((bedrock,), pages=500, largest=1000)
