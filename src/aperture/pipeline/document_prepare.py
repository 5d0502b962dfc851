"""Per attempt: each document in the form the attempt's target takes, and what it costs there.

A model that reads PDFs gets the PDF as it is; a vision model without that gets the pages,
rendered by the gateway at the resolution the model sees (in the decode pool, bounded in
pages by intake, in pixels here, in time by ``render_timeout_s`` and in memory and CPU by
the pool); a text-only model gets the text layer when ``documents.text_only`` is
``extract``. The renderings are kept for the request, so failover to a target that sees
pages the same way renders nothing twice. A request without documents costs one check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import anyio
import msgspec

from aperture.documents.forms import Form, form_for
from aperture.errors import (
    DocumentDecodeError,
    DocumentTooLargeError,
    TooManyPagesError,
    UnsupportedCapabilityError,
)
from aperture.governance.estimate import document_tokens, page_long_edge
from aperture.images import data_uri_for
from aperture.images.limits import TargetImageLimits
from aperture.images.workers import DecodeFailed
from aperture.model import ChatRequest, File, Image, InlineImage, Message, Part, Target, Text
from aperture.pipeline.context import CheckedDocument, RequestContext
from aperture.pipeline.documents import PdfWork, read_text
from aperture.settings import DocumentSettings

__all__ = ["DocumentPreparer", "PreparedDocuments", "RenderCache"]

_At = tuple[int, int]
RenderCache = dict[tuple[str, int, TargetImageLimits], tuple[Image, ...]]
"""One request's rendered pages, by document digest, long edge and target limits."""


class PreparedDocuments(NamedTuple):
    request: ChatRequest
    tokens: int = 0
    """The documents' estimated input tokens at the target, in the form they were sent."""
    forms: tuple[Form, ...] = ()


class DocumentPreparer:
    def __init__(
        self,
        settings: DocumentSettings,
        work: PdfWork,
        target_limits: Callable[[Target], TargetImageLimits],
    ) -> None:
        self._settings = settings
        self._work = work
        self._target_limits = target_limits
        self._extract = settings.text_only == "extract"

    async def __call__(
        self, ctx: RequestContext, request: ChatRequest, target: Target, cache: RenderCache
    ) -> PreparedDocuments:
        files = request.files()
        if not files:
            return PreparedDocuments(request)
        capabilities = next(
            (o.capabilities for o in ctx.options if o.target == target), frozenset({"documents"})
        )
        limits = self._target_limits(target)
        pages_sent = sum(
            ctx.documents[m, p].info.pages
            for m, p, file in files
            if (m, p) in ctx.documents
            and form_for(capabilities, inline=True, extract=self._extract) == "pages"
        )
        image_count = len(request.images()) + pages_sent
        if pages_sent:
            constraint = ctx.resolution.constraints.max_images if ctx.resolution else None
            cap = min(limits.max_images, constraint or limits.max_images)
            if image_count > cap:
                raise TooManyPagesError(
                    f"The documents' {pages_sent} pages go to {target.upstream_model!r} as "
                    f"images, with the request's own that is {image_count}; it takes at most "
                    f"{cap}.",
                    param=ctx.locator.part(*files[0][:2]),
                )
        replaced: dict[_At, tuple[Part, ...]] = {}
        tokens = 0
        forms: list[Form] = []
        for m, p, file in files:
            at = (m, p)
            document = ctx.documents.get(at)
            form = form_for(capabilities, inline=document is not None, extract=self._extract)
            param = ctx.locator.part(m, p)
            if form is None:
                raise UnsupportedCapabilityError(
                    f"{target.upstream_model!r} cannot take a document given by id or URL; "
                    "send its bytes (a data URI).",
                    param=param,
                )
            forms.append(form)
            if document is None:
                continue  # a file id or URL, for a target that reads documents natively
            text_chars: int | None = None
            if form == "pages":
                edge = page_long_edge(limits, image_count)
                replaced[at] = (
                    _label(file, document),
                    *await self._pages(document, edge, limits, param, cache),
                )
            elif form == "text":
                text = await self._text(ctx, at, document, param)
                text_chars = len(text)
                replaced[at] = (Text(_heading(file, document) + "\n\n" + text),)
            tokens += document_tokens(
                form,
                target,
                document.sizes,
                limits,
                image_count=image_count,
                max_pixels=self._settings.render_max_pixels,
                text_chars=text_chars,
            )
        return PreparedDocuments(_expand(request, replaced), tokens, tuple(forms))

    async def _pages(
        self,
        document: CheckedDocument,
        edge: int,
        limits: TargetImageLimits,
        param: str,
        cache: RenderCache,
    ) -> tuple[Image, ...]:
        key = (document.info.sha256, edge, limits)
        cached = cache.get(key)
        if cached is not None:
            return cached
        pages = tuple(range(document.info.pages))
        timeout = self._settings.render_timeout_s
        try:
            with anyio.fail_after(timeout):
                rendered = await self._work.render(
                    document.data, pages, edge, self._settings.render_max_pixels, limits
                )
        except TimeoutError as exc:
            raise DocumentTooLargeError(
                f"Rendering the document's pages took longer than {timeout:g}s; send fewer "
                "or simpler pages.",
                param=param,
            ) from exc
        except DecodeFailed as exc:
            raise _render_error(exc, param) from exc
        images = []
        for page in rendered:
            info = InlineImage(
                mime=page.mime,
                width=page.width,
                height=page.height,
                size_bytes=len(page.data),
                frames=1,
                payload_offset=0,
            )
            url, info = data_uri_for(page.data, info)
            images.append(Image(url, None, info))
        cache[key] = tuple(images)
        return cache[key]

    async def _text(
        self, ctx: RequestContext, at: _At, document: CheckedDocument, param: str
    ) -> str:
        text = ctx.document_texts.get(at)
        if text is None:
            try:
                text = await read_text(self._work, document, self._settings)
            except DecodeFailed as exc:
                raise _render_error(exc, param) from exc
            ctx.document_texts[at] = text
        return text


def _heading(file: File, document: CheckedDocument) -> str:
    name = file.filename or "document.pdf"
    return f"[{name}, {document.info.pages} page{'s' if document.info.pages != 1 else ''}]"


def _label(file: File, document: CheckedDocument) -> Text:
    return Text(f"{_heading(file, document)} Its pages as images, in order:")


def _render_error(failure: DecodeFailed, param: str) -> Exception:
    if failure.kind in ("memory", "cpu"):
        return DocumentTooLargeError(
            f"Rendering the document needs {failure.detail}, over the gateway's limit; send "
            "fewer or simpler pages.",
            param=param,
        )
    return DocumentDecodeError(
        f"The document's pages could not be rendered ({failure.detail}).", param=param
    )


def _expand(request: ChatRequest, replaced: dict[_At, tuple[Part, ...]]) -> ChatRequest:
    """``request`` with the parts at (message, part) replaced by several parts each."""
    if not replaced:
        return request
    messages = tuple(_expand_message(msg, m, replaced) for m, msg in enumerate(request.messages))
    return msgspec.structs.replace(request, messages=messages)


def _expand_message(message: Message, m: int, replaced: dict[_At, tuple[Part, ...]]) -> Message:
    content = message.content
    if content is None or isinstance(content, str):
        return message
    if not any((m, p) in replaced for p in range(len(content))):
        return message
    parts: list[Part] = []
    for p, part in enumerate(content):
        parts.extend(replaced.get((m, p), (part,)))
    return msgspec.structs.replace(message, content=tuple(parts))
