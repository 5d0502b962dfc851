"""Stages that read what the client wrote: policy rules, OCR, PII and pre-call guardrails.

Each applies to vision requests exactly as to text ones. Text rendered inside images is
invisible to text scanners unless ``governance.ocr`` is on; then ``ReadImages`` puts the text
tesseract finds in ``ctx.image_texts``, and the policy patterns, the PII scan and the
guardrails read it with the text portions. A document's text layer (and, with OCR, the
text of its pages without one) is in ``ctx.document_texts``, read the same way. Matched
values never reach an error message, a log line or the audit trail: only which check
fired, its action and the field.
"""

from __future__ import annotations

import logging

import msgspec

from aperture.errors import PiiDetectedError, PolicyViolationError
from aperture.governance.guardrails import Guardrails, Outcome, raise_if_blocked
from aperture.governance.ocr import OcrError, OcrReader
from aperture.governance.pii import Finding, PiiScanner
from aperture.governance.policy import PolicyEngine, Violation, text_path
from aperture.model import ChatRequest, File, Message, Text
from aperture.pipeline.context import RequestContext
from aperture.settings.governance import PiiAction
from aperture.storage.records import AuditFinding

__all__ = ["EnforcePolicy", "PreCallGuardrails", "ReadImages", "ScreenPii", "guard_findings"]

log = logging.getLogger(__name__)

_At = tuple[int, int]


class EnforcePolicy:
    """``governance.policy``, run twice: before intake (so a URL a rule forbids is never
    fetched) and after it, for what only intake and OCR can tell (the size of a fetched
    image, patterns in the text of an image). The second pass reports only what is new."""

    def __init__(self, engine: PolicyEngine, *, after_intake: bool) -> None:
        self._engine = engine
        self._after_intake = after_intake

    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        assert ctx.resolution is not None, "ResolveModel runs first"
        violations = self._engine.evaluate(
            request,
            model=ctx.resolution.name,
            principal=ctx.principal,
            locator=ctx.locator,
            image_bytes={at: info.size_bytes for at, info in ctx.images.items()},
            image_texts=ctx.image_texts,
            document_texts=ctx.document_texts,
        )
        seen = {(f.name, f.param) for f in ctx.findings if f.check == "policy"}
        for violation in violations:
            if self._after_intake and (violation.rule, violation.param) in seen:
                continue
            ctx.findings.append(_policy_finding(violation))
            if violation.action == "block":
                raise PolicyViolationError(violation.message, param=violation.param)
        return request


def _policy_finding(violation: Violation) -> AuditFinding:
    return AuditFinding(
        check="policy", name=violation.rule, action=violation.action, param=violation.param
    )


class ReadImages:
    """OCR of every image the client sent, into ``ctx.image_texts`` (one image at a time:
    tesseract is CPU-bound and the worker pool is shared with image normalisation)."""

    def __init__(self, reader: OcrReader) -> None:
        self._reader = reader

    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        for at in ctx.images:
            data = ctx.decoded.get(at)
            if data is None:
                continue
            try:
                text = await self._reader.read(data)
            except OcrError as exc:
                # An unreadable image hides nothing a text scanner could have caught.
                log.warning("ocr failed for %s image %s: %s", ctx.request_id, at, exc)
                continue
            if text:
                ctx.image_texts[at] = text
        return request


class ScreenPii:
    """Finds personal data in the text portions (and OCR text) and blocks, redacts or logs.

    Whatever the action, the audit trail keeps the redacted text. With ``redact`` the
    provider receives the redacted text too. Text read from an image cannot be redacted
    out of its pixels: with ``block`` or ``redact`` such an image is refused.
    """

    def __init__(self, scanner: PiiScanner, action: PiiAction) -> None:
        self._scanner = scanner
        self._action = action

    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        messages = list(request.messages)
        audit_texts: list[str] = []
        changed = False
        for m, message in enumerate(request.messages):
            rebuilt, texts = self._screen(ctx, m, message)
            audit_texts += texts
            if rebuilt is not message:
                messages[m] = rebuilt
                changed = True
        for at, text in ctx.image_texts.items():
            findings = self._scanner.scan(text)
            if findings:
                self._found(ctx, findings, ctx.locator.image(*at), image=True)
        for at, text in ctx.document_texts.items():
            findings = self._scanner.scan(text)
            if findings:
                self._found(ctx, findings, ctx.locator.part(*at), image=True, what="a document")
        ctx.texts = tuple(audit_texts)
        if changed and self._action == "redact":
            return msgspec.structs.replace(request, messages=tuple(messages))
        return request

    def _screen(self, ctx: RequestContext, m: int, message: Message) -> tuple[Message, list[str]]:
        content = message.content
        if isinstance(content, str):
            findings = self._scanner.scan(content)
            if not findings:
                return message, [content]
            self._found(ctx, findings, text_path(ctx.locator, m, 0, whole=True), image=False)
            clean = self._scanner.redact(content, findings)
            return msgspec.structs.replace(message, content=clean), [clean]
        if not content:
            return message, []
        parts = list(content)
        texts: list[str] = []
        changed = False
        for p, part in enumerate(content):
            if isinstance(part, File) and part.filename:
                named = self._screen_filename(ctx, m, p, part)
                if named is not part:
                    parts[p] = named
                    changed = True
                continue
            if not isinstance(part, Text):
                continue
            findings = self._scanner.scan(part.text)
            if not findings:
                texts.append(part.text)
                continue
            self._found(ctx, findings, text_path(ctx.locator, m, p, whole=False), image=False)
            clean = self._scanner.redact(part.text, findings)
            parts[p] = Text(clean, part.cache)
            texts.append(clean)
            changed = True
        if not changed:
            return message, texts
        return msgspec.structs.replace(message, content=tuple(parts)), texts

    def _screen_filename(self, ctx: RequestContext, m: int, p: int, file: File) -> File:
        """A document's name is text too: sent to some providers, kept by the audit."""
        assert file.filename is not None
        findings = self._scanner.scan(file.filename)
        if not findings:
            return file
        self._found(ctx, findings, f"{ctx.locator.part(m, p)}.filename", image=False)
        clean = self._scanner.redact(file.filename, findings)
        document = ctx.documents.get((m, p))
        if document is not None:  # the audit keeps redacted text, whatever the action
            ctx.documents[m, p] = document._replace(filename=clean)
        return msgspec.structs.replace(file, filename=clean)

    def _found(
        self,
        ctx: RequestContext,
        findings: list[Finding],
        param: str,
        *,
        image: bool,
        what: str = "an image",
    ) -> None:
        counts: dict[str, int] = {}
        for finding in findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        for kind, count in counts.items():
            ctx.findings.append(
                AuditFinding(check="pii", name=kind, action=self._action, param=param, count=count)
            )
        if self._action == "block" or (image and self._action == "redact"):
            kinds = ", ".join(sorted(counts))
            where = what if image else "the text"
            raise PiiDetectedError(
                f"Personal data ({kinds}) was found in {where} at {param}; the request was "
                "not sent. Remove it and try again.",
                param=param,
            )


class PreCallGuardrails:
    """The route's and model's ``pre`` guardrails over the (already redacted) text."""

    def __init__(self, guardrails: Guardrails) -> None:
        self._guardrails = guardrails

    async def __call__(self, ctx: RequestContext, request: ChatRequest) -> ChatRequest:
        assert ctx.resolution is not None, "ResolveModel runs first"
        selection = self._guardrails.for_request(ctx.resolution.route_id, ctx.resolution.name)
        if not selection:
            return request
        texts = [*ctx.texts, *ctx.image_texts.values(), *ctx.document_texts.values()]
        outcomes = await selection.run("pre", texts)
        ctx.findings += guard_findings(outcomes)
        raise_if_blocked(outcomes)
        return request


def guard_findings(outcomes: list[Outcome]) -> list[AuditFinding]:
    """The audit's record of guardrail decisions that did not simply allow."""
    return [
        AuditFinding(check="guardrail", name=o.guardrail, action=o.action)
        for o in outcomes
        if not o.allowed or o.error is not None
    ]
