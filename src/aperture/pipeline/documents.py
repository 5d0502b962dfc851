"""Stage: check every document before anything leaves.

A document's data URI is decoded strictly and sniffed (``%PDF-``) within the byte limit,
then PDFium counts its pages and checks their boxes and encryption, in a decode worker when
there is a pool (PDFium is not thread-safe: without a pool one thread at a time uses it).
The targets that cannot take that many pages in their form (natively, or rendered) are
dropped here, before any page is drawn. When a check reads text, the text layer is read
too (and the pages without one OCR'd, when OCR is on).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

import anyio
import msgspec

from aperture.documents import DocumentLimits, PdfProblem, decode_document, describe, inspect_pdf
from aperture.documents.forms import Form, form_for
from aperture.documents.pdf import page_texts, render_pages
from aperture.errors import (
    DocumentDecodeError,
    DocumentEncryptedError,
    DocumentTooLargeError,
    InvalidRequestError,
    TooManyPagesError,
)
from aperture.governance.estimate import document_tokens
from aperture.governance.ocr import OcrError, OcrReader
from aperture.images.limits import TargetImageLimits
from aperture.images.normalize import Normalized
from aperture.images.rendered import encode_bitmaps
from aperture.images.workers import DecodeFailed, DecodePool, chain
from aperture.model import ChatRequest, File, Message, Part, Target
from aperture.pipeline.context import CheckedDocument, RequestContext
from aperture.providers.registry import spec_for
from aperture.settings import DocumentSettings

__all__ = ["IntakeDocuments", "PdfWork", "within_provider_limits"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Pages without a text layer are rendered this large for OCR: tesseract reads 300 dpi
# best, and a letter page at this size is close to it.
_OCR_LONG_EDGE = 2400
_OCR_LIMITS = TargetImageLimits(accepted=frozenset({"image/png"}), max_bytes=64_000_000)


class _Option(Protocol):
    @property
    def target(self) -> Target: ...

    def can(self, capability: str) -> bool: ...


class PdfWork:
    """PDFium jobs, in the decode pool when there is one (memory and CPU ceilings, a crash
    costs a worker), else in a thread, one at a time: PDFium is not thread-safe."""

    def __init__(self, decoder: DecodePool | None) -> None:
        self._decoder = decoder
        self._serial = anyio.CapacityLimiter(1)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)``; raises ``DecodeFailed`` when the pool's worker did not finish."""
        if self._decoder is not None:
            return await self._decoder.run(fn, *args)
        return await anyio.to_thread.run_sync(
            lambda: fn(*args), limiter=self._serial, abandon_on_cancel=True
        )

    async def texts(self, data: bytes, max_pages: int, max_chars: int) -> tuple[str, ...]:
        return await self.run(page_texts, data, max_pages, max_chars)

    async def render(
        self,
        data: bytes,
        pages: tuple[int, ...],
        long_edge: int,
        max_pixels: int,
        limits: TargetImageLimits,
    ) -> list[Normalized]:
        """``pages`` rendered and encoded for ``limits``, one page in memory at a time."""
        first = (data, pages, long_edge, max_pixels)
        return await self.run(chain, render_pages, first, encode_bitmaps, (limits,))


class IntakeDocuments:
    def __init__(
        self,
        settings: DocumentSettings,
        work: PdfWork,
        *,
        target_limits: Callable[[Target], TargetImageLimits],
        read_text: bool = False,
        ocr: OcrReader | None = None,
    ) -> None:
        self._settings = settings
        self._limits = DocumentLimits(
            settings.max_document_bytes, settings.max_pages, settings.max_page_side_pt
        )
        self._max_documents = settings.max_documents_per_request
        self._work = work
        self._read_text = read_text or ocr is not None
        self._ocr = ocr
        self._target_limits = target_limits

    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        files = request.files()
        if not files:
            return request
        if len(files) > self._max_documents:
            raise InvalidRequestError(
                f"The request has {len(files)} documents; the limit is {self._max_documents}.",
                param="messages",
            )
        replaced: dict[tuple[int, int], File] = {}
        for m, p, file in files:
            param = ctx.locator.part(m, p)
            if file.file_data is None:
                if file.url is not None and not file.url.lower().startswith("https://"):
                    raise DocumentDecodeError("Document URLs must be https.", param=param)
                continue  # a file id or URL: the provider's to resolve, or to refuse
            checked = await self._check(file, file.file_data, param)
            replaced[m, p] = checked.file
            ctx.documents[m, p] = checked.document
        if ctx.documents:
            documents = list(ctx.documents.values())
            ctx.options = within_provider_limits(
                ctx.options,
                pages=sum(d.info.pages for d in documents),
                largest=max(d.info.size_bytes for d in documents),
                render_max_pages=self._settings.render_max_pages,
                extract=self._settings.text_only == "extract",
                param=ctx.locator.part(*next(iter(ctx.documents))),
            )
            if self._read_text:
                await self._read(ctx)
            ctx.document_estimate = self._estimate(ctx, len(request.images()))
        return _replace_files(request, replaced)

    def _estimate(self, ctx: RequestContext, images: int) -> int:
        """The documents' tokens at the dearest target, in the form each would take them."""
        extract = self._settings.text_only == "extract"
        pages = sum(d.info.pages for d in ctx.documents.values())
        dearest = 0
        for option in ctx.options:
            able = tuple(c for c in ("documents", "vision") if option.can(c))
            form = form_for(able, inline=True, extract=extract)
            if form is None:
                continue
            limits = self._target_limits(option.target)
            count = images + (pages if form == "pages" else 0)
            total = 0
            for at, document in ctx.documents.items():
                text = ctx.document_texts.get(at)
                total += document_tokens(
                    form,
                    option.target,
                    document.sizes,
                    limits,
                    image_count=count,
                    max_pixels=self._settings.render_max_pixels,
                    text_chars=len(text) if text is not None else None,
                )
            dearest = max(dearest, total)
        return dearest

    async def _check(self, file: File, uri: str, param: str) -> _Checked:
        decoded = decode_document(uri, self._limits.max_bytes, param=param)
        limits = self._limits
        try:
            facts = await self._work.run(
                inspect_pdf, decoded.data, limits.max_pages, limits.max_side_pt
            )
        except DecodeFailed as exc:
            raise DocumentDecodeError(
                f"The PDF could not be read within the gateway's limits ({exc.kind}).",
                param=param,
            ) from exc
        if isinstance(facts, PdfProblem):
            raise _problem(facts, limits, param)
        info = describe(decoded, facts.pages)
        checked = File(file.file_id, decoded.uri, file.filename, file.url, info, file.cache)
        return _Checked(checked, CheckedDocument(info, decoded.data, facts.sizes, file.filename))

    async def _read(self, ctx: RequestContext) -> None:
        """The text layer of each document (OCR of its pages without one, when OCR is on),
        for the policy patterns, the PII scan and the guardrails."""
        for at, document in ctx.documents.items():
            try:
                text = await read_text(self._work, document, self._settings, self._ocr)
            except DecodeFailed as exc:
                raise DocumentDecodeError(
                    f"The PDF's text could not be read within the gateway's limits ({exc.kind}).",
                    param=ctx.locator.part(*at),
                ) from exc
            if text:
                ctx.document_texts[at] = text


class _Checked(msgspec.Struct, frozen=True):
    file: File
    document: CheckedDocument


async def read_text(
    work: PdfWork,
    document: CheckedDocument,
    settings: DocumentSettings,
    ocr: OcrReader | None = None,
) -> str:
    """The document's text layer, pages separated by form feeds; with ``ocr``, the pages
    without one (scans) are rendered and read, up to ``render_max_pages`` of them."""
    pages = list(await work.texts(document.data, settings.max_pages, settings.max_text_chars))
    blank = tuple(i for i, text in enumerate(pages) if not text)[: settings.render_max_pages]
    if ocr is not None and blank:
        try:
            with anyio.fail_after(settings.render_timeout_s):
                images = await work.render(
                    document.data, blank, _OCR_LONG_EDGE, settings.render_max_pixels, _OCR_LIMITS
                )
        except (TimeoutError, DecodeFailed) as exc:
            # As for an image OCR cannot read: what it cannot draw hides nothing a text
            # scanner could have caught.
            log.warning("the pages without text could not be drawn for OCR: %s", exc)
            images = []
        for index, image in zip(blank, images, strict=False):
            try:
                pages[index] = await ocr.read(image.data)
            except OcrError as exc:
                # An unreadable page hides nothing a text scanner could have caught.
                log.warning("ocr failed for a document page %d: %s", index + 1, exc)
    return "\f".join(pages).strip("\f")[: settings.max_text_chars]


_O = TypeVar("_O", bound=_Option)


def within_provider_limits(
    options: tuple[_O, ...],
    *,
    pages: int,
    largest: int,
    render_max_pages: int | None = None,
    extract: bool = False,
    param: str = "messages",
) -> tuple[_O, ...]:
    """The targets that can take documents this large in the form each takes them in: the
    kinds that read PDFs within their spec's limits, vision models within the pages the
    gateway renders (``render_max_pages``), text-only models (their text) always.

    A kind whose spec states no document limits takes what the gateway's own limits let by.

    Raises:
        TooManyPagesError, DocumentTooLargeError: no target can take the documents.
    """
    kept: list[_O] = []
    refusal: Exception | None = None
    for option in options:
        able = tuple(c for c in ("documents", "vision") if option.can(c))
        form: Form | None = form_for(able, inline=True, extract=extract)
        kind = option.target.provider.kind
        limits = spec_for(kind).documents if form == "native" else None
        if form == "pages" and render_max_pages is not None and pages > render_max_pages:
            refusal = TooManyPagesError(
                f"The documents have {pages} pages; the gateway renders at most "
                f"{render_max_pages} to images for {option.target.upstream_model!r}, which "
                "reads no PDFs (documents.render_max_pages).",
                param=param,
            )
        elif limits is not None and pages > limits.max_pages:
            refusal = TooManyPagesError(
                f"The documents have {pages} pages; {kind} reads at most {limits.max_pages} "
                "in a request.",
                param="messages",
            )
        elif limits is not None and largest > limits.max_bytes:
            refusal = DocumentTooLargeError(
                f"A document is {largest} bytes; {kind} reads at most {limits.max_bytes} bytes "
                "in one.",
                param="messages",
            )
        else:
            kept.append(option)
    if not kept and refusal is not None:
        raise refusal
    return tuple(kept)


def _problem(problem: PdfProblem, limits: DocumentLimits, param: str) -> Exception:
    match problem.problem:
        case "encrypted":
            return DocumentEncryptedError(
                f"The document cannot be used: {problem.detail}. Send it without encryption.",
                param=param,
            )
        case "too_many_pages":
            return TooManyPagesError(
                f"The document has {problem.detail} pages; the limit is {limits.max_pages}.",
                param=param,
            )
        case "page_too_large":
            return DocumentTooLargeError(f"The document's {problem.detail}.", param=param)
    return DocumentDecodeError(f"The document cannot be used: {problem.detail}.", param=param)


def _replace_files(request: ChatRequest, replaced: dict[tuple[int, int], File]) -> ChatRequest:
    if not replaced:
        return request
    messages = tuple(
        _replace_parts(message, m, replaced) for m, message in enumerate(request.messages)
    )
    return msgspec.structs.replace(request, messages=messages)


def _replace_parts(message: Message, m: int, replaced: dict[tuple[int, int], File]) -> Message:
    if isinstance(message.content, str | None):
        return message
    parts: tuple[Part, ...] = tuple(
        replaced.get((m, p), part) for p, part in enumerate(message.content)
    )
    return msgspec.structs.replace(message, content=parts)
