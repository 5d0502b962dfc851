"""Documents (PDFs): strict intake, page counts and the text layer, with PDFium confined here.

Computation beside the pipeline like ``images``: no HTTP, no provider, no store. Only
``documents.pdf`` imports pypdfium2, and it runs in the decode workers (``images.workers``)
when there is a pool, since PDFium is neither thread-safe nor memory-safe on hostile input.
"""

from aperture.documents.intake import DocumentLimits, decode_document, describe
from aperture.documents.pdf import PdfFacts, PdfProblem, inspect_pdf, pdf_text

__all__ = [
    "DocumentLimits",
    "PdfFacts",
    "PdfProblem",
    "decode_document",
    "describe",
    "inspect_pdf",
    "pdf_text",
]
