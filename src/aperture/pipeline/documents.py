"""Stage: check every document before anything leaves.

A document's data URI is decoded strictly and sniffed (``%PDF-``) within the byte limit,
then PDFium counts its pages and checks their boxes and encryption, in a decode worker when
there is a pool (PDFium is not thread-safe: without a pool one thread at a time uses it).
"""

from __future__ import annotations

from typing import Protocol, TypeVar

import anyio
import msgspec

from aperture.documents import DocumentLimits, PdfProblem, decode_document, describe, inspect_pdf
from aperture.errors import (
    DocumentDecodeError,
    DocumentEncryptedError,
    DocumentTooLargeError,
    InvalidRequestError,
    TooManyPagesError,
)
from aperture.images.workers import DecodeFailed, DecodePool
from aperture.model import ChatRequest, File, Message, Part, Target
from aperture.pipeline.context import RequestContext
from aperture.providers.registry import spec_for
from aperture.settings import DocumentSettings

__all__ = ["IntakeDocuments", "within_provider_limits"]


class _HasTarget(Protocol):
    @property
    def target(self) -> Target: ...


class IntakeDocuments:
    def __init__(self, settings: DocumentSettings, decoder: DecodePool | None) -> None:
        self._limits = DocumentLimits(
            settings.max_document_bytes, settings.max_pages, settings.max_page_side_pt
        )
        self._max_documents = settings.max_documents_per_request
        self._decoder = decoder
        # PDFium is not thread-safe: without worker processes, one call at a time.
        self._serial = anyio.CapacityLimiter(1)

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
            replaced[m, p] = await self._check(file, file.file_data, param)
        checked = [f.inline for f in replaced.values() if f.inline is not None]
        if checked:
            ctx.options = within_provider_limits(
                ctx.options,
                pages=sum(d.pages for d in checked),
                largest=max(d.size_bytes for d in checked),
            )
        return _replace_files(request, replaced)

    async def _check(self, file: File, uri: str, param: str) -> File:
        decoded = decode_document(uri, self._limits.max_bytes, param=param)
        limits = self._limits
        try:
            if self._decoder is not None:
                facts = await self._decoder.run(
                    inspect_pdf, decoded.data, limits.max_pages, limits.max_side_pt
                )
            else:
                facts = await anyio.to_thread.run_sync(
                    inspect_pdf,
                    decoded.data,
                    limits.max_pages,
                    limits.max_side_pt,
                    limiter=self._serial,
                )
        except DecodeFailed as exc:
            raise DocumentDecodeError(
                f"The PDF could not be read within the gateway's limits ({exc.kind}).",
                param=param,
            ) from exc
        if isinstance(facts, PdfProblem):
            raise _problem(facts, limits, param)
        info = describe(decoded, facts.pages)
        return File(file.file_id, decoded.uri, file.filename, file.url, info, file.cache)


_O = TypeVar("_O", bound=_HasTarget)


def within_provider_limits(options: tuple[_O, ...], *, pages: int, largest: int) -> tuple[_O, ...]:
    """The targets whose provider reads documents this large natively (its spec's limits).

    A kind whose spec states no document limits takes what the gateway's own limits let by.

    Raises:
        TooManyPagesError, DocumentTooLargeError: no target can take the documents.
    """
    kept: list[_O] = []
    refusal: Exception | None = None
    for option in options:
        limits = spec_for(option.target.provider.kind).documents
        if limits is not None and pages > limits.max_pages:
            refusal = TooManyPagesError(
                f"The documents have {pages} pages; {option.target.provider.kind} reads at "
                f"most {limits.max_pages} in a request.",
                param="messages",
            )
        elif limits is not None and largest > limits.max_bytes:
            refusal = DocumentTooLargeError(
                f"A document is {largest} bytes; {option.target.provider.kind} reads at most "
                f"{limits.max_bytes} bytes in one.",
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
