"""After-step: PII in the model's answer (``governance.pii.scan_responses``) and the
``post`` guardrails, for whole answers and for streams.

A stream is redacted as it flows: each choice's text passes through a ``StreamRedactor``
that holds back a short tail so a value split across chunks is still caught, and releases it
before the choice's finish. Post guardrails judge a stream once it is over; what was already
sent cannot be recalled, so a block then ends the stream with an error event instead of its
normal end (clients see the answer was refused, and ``[DONE]`` is never sent).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from aperture.errors import PiiDetectedError
from aperture.governance.guardrails import Guardrails, raise_if_blocked
from aperture.governance.pii import PiiScanner, StreamRedactor
from aperture.model import ChatResponse, Choice, Delta, Finish, StreamEvent, Thought
from aperture.pipeline.context import RequestContext
from aperture.pipeline.screening import guard_findings
from aperture.pipeline.step import After
from aperture.settings.governance import PiiAction, PiiDetector
from aperture.storage.records import AuditFinding

__all__ = ["AnswerScreen", "StreamScreen"]


class AnswerScreen(After):
    """What checks answers; ``needed`` says whether a request needs any. The last step of
    the pipeline, so the first to see the answer on its way back."""

    def __init__(
        self, scanner: PiiScanner | None, action: PiiAction, guardrails: Guardrails | None
    ) -> None:
        self._scanner = scanner
        self._action = action
        self._guardrails = guardrails

    def _post(self, ctx: RequestContext) -> Guardrails | None:
        if self._guardrails is None or ctx.resolution is None:
            return None
        selection = self._guardrails.for_request(ctx.resolution.route_id, ctx.resolution.name)
        return self._guardrails if selection else None

    def needed(self, ctx: RequestContext) -> bool:
        return self._scanner is not None or self._post(ctx) is not None

    async def answer(self, ctx: RequestContext, response: ChatResponse) -> ChatResponse:
        return await self.complete(ctx, response) if self.needed(ctx) else response

    async def complete(self, ctx: RequestContext, response: ChatResponse) -> ChatResponse:
        """The answer with PII handled, after the post guardrails allowed it.

        Raises:
            PiiDetectedError: PII in the answer with action ``block``.
            PolicyViolationError: a post guardrail blocked the answer.
        """
        choices = list(response.choices)
        scanner = self._scanner
        if scanner is not None:
            for i, choice in enumerate(response.choices):
                if choice.reasoning:
                    choices[i] = choice = self._thoughts(ctx, scanner, choice, i)
                if not choice.content:
                    continue
                findings = scanner.scan(choice.content)
                if not findings:
                    continue
                kinds: dict[PiiDetector, int] = {}
                for finding in findings:
                    kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
                self.found(ctx, kinds, f"choices[{i}].message.content")
                if self._action == "redact":
                    clean = scanner.redact(choice.content, findings)
                    # The tokens' logprobs spell the redacted text out: they go too.
                    choices[i] = msgspec.structs.replace(choice, content=clean, logprobs=None)
        await self.judge(ctx, [c.content for c in choices if c.content])
        return msgspec.structs.replace(response, choices=tuple(choices))

    def _thoughts(self, ctx: RequestContext, scanner: PiiScanner, choice: Choice, i: int) -> Choice:
        """The model's thoughts are part of its answer: screened alike. A redacted thought
        loses its signature (the provider would refuse it altered), so it is not sent back."""
        thoughts = []
        for k, thought in enumerate(choice.reasoning or ()):
            findings = scanner.scan(thought.text) if thought.text else []
            if findings:
                kinds: dict[PiiDetector, int] = {}
                for finding in findings:
                    kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
                self.found(ctx, kinds, f"choices[{i}].message.reasoning[{k}]")
                if self._action == "redact":
                    thought = Thought(scanner.redact(thought.text, findings))
            thoughts.append(thought)
        return msgspec.structs.replace(choice, reasoning=tuple(thoughts))

    def stream(self, ctx: RequestContext) -> StreamScreen | None:
        return StreamScreen(self, ctx) if self.needed(ctx) else None

    @property
    def scanner(self) -> PiiScanner | None:
        return self._scanner

    @property
    def action(self) -> PiiAction:
        return self._action

    def found(self, ctx: RequestContext, kinds: Mapping[PiiDetector, int], param: str) -> None:
        for kind, count in kinds.items():
            ctx.findings.append(
                AuditFinding(check="pii", name=kind, action=self._action, param=param, count=count)
            )
        if self._action == "block":
            raise PiiDetectedError(
                f"The model's answer contained personal data ({', '.join(sorted(kinds))}); "
                "it was withheld.",
                param=param,
            )

    async def judge(self, ctx: RequestContext, texts: list[str]) -> None:
        guardrails = self._post(ctx)
        if guardrails is None or ctx.resolution is None:
            return
        selection = guardrails.for_request(ctx.resolution.route_id, ctx.resolution.name)
        outcomes = await selection.run("post", texts)
        ctx.findings += guard_findings(outcomes)
        raise_if_blocked(outcomes)


class StreamScreen:
    """One stream's redactors (one per choice) and the text the post guardrails will read."""

    def __init__(self, screen: AnswerScreen, ctx: RequestContext) -> None:
        self._screen = screen
        self._ctx = ctx
        self._redactors: dict[int, StreamRedactor] = {}
        self._texts: dict[int, list[str]] = {}
        # Per choice: the redactor of the thought being streamed, and whether it redacted.
        self._thinking: dict[int, StreamRedactor] = {}
        self._altered: set[int] = set()

    def event(self, event: StreamEvent) -> list[StreamEvent]:
        """What to send for ``event``: possibly nothing yet, possibly held-back text first.

        Raises:
            PiiDetectedError: PII in the answer with action ``block``.
        """
        if isinstance(event, Delta) and event.thought is not None:
            return self._thought(event)
        if isinstance(event, Delta) and event.content and event.index in self._thinking:
            # The answer has begun: the thinking held back goes first.
            return [*self._release_thought(event.index, ended=False), *self.event(event)]
        if isinstance(event, Delta) and event.content:
            self._texts.setdefault(event.index, []).append(event.content)
            redactor = self._redactor(event.index)
            if redactor is None:
                return [event]
            released = redactor.feed(event.content)
            self._check(redactor, event.index)
            if not released and event.role is None and not event.tool_calls:
                return []
            # Held-back text no longer lines up with its tokens, which would spell out what
            # is redacted: a redacting stream carries no logprobs.
            return [msgspec.structs.replace(event, content=released or None, logprobs=None)]
        if isinstance(event, Finish):
            held = self._release_thought(event.index, ended=True)
            return [*held, *self._release(event.index), event]
        return [event]

    def _release_thought(self, index: int, *, ended: bool) -> list[StreamEvent]:
        """A thought's held text, when the answer begins or the choice ``ended`` (its
        signature, if one follows, is still dropped if the thought was altered)."""
        redactor = self._thinking.pop(index, None)
        if ended:
            self._altered.discard(index)
        if redactor is None:
            return []
        rest = redactor.flush()
        self._check_thought(redactor, index)
        return [Delta(index=index, thought=Thought(rest))] if rest else []

    async def finish(self) -> list[StreamEvent]:
        """The text still held, then the post guardrails' verdict on the whole answer.

        Raises:
            PiiDetectedError, PolicyViolationError: as ``AnswerScreen.complete``.
        """
        held = [e for index in list(self._redactors) for e in self._release(index)]
        texts = {index: "".join(parts) for index, parts in self._texts.items()}
        scanner = self._screen.scanner
        if scanner is not None and self._screen.action == "log":
            for index, text in texts.items():
                kinds: dict[PiiDetector, int] = {}
                for finding in scanner.scan(text):
                    kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
                if kinds:
                    self._screen.found(self._ctx, kinds, f"choices[{index}].delta.content")
        await self._screen.judge(self._ctx, list(texts.values()))
        return held

    def _thought(self, event: Delta) -> list[StreamEvent]:
        """Thinking text through its own redactor; what it held is released before the
        signature that ends the thought, which is dropped if the thought was altered."""
        thought = event.thought
        assert thought is not None
        scanner = self._screen.scanner
        if scanner is None or self._screen.action == "log" or thought.redacted is not None:
            return [event]
        index = event.index
        redactor = self._thinking.setdefault(index, StreamRedactor(scanner))
        if thought.text:
            released = redactor.feed(thought.text)
            self._check_thought(redactor, index)
            return [Delta(index=index, thought=Thought(released))] if released else []
        rest = redactor.flush()
        self._check_thought(redactor, index)
        del self._thinking[index]
        out: list[StreamEvent] = [Delta(index=index, thought=Thought(rest))] if rest else []
        if index not in self._altered:
            out.append(event)
        self._altered.discard(index)
        return out

    def _check_thought(self, redactor: StreamRedactor, index: int) -> None:
        if redactor.detected:
            found, redactor.detected = dict(redactor.detected), {}
            self._altered.add(index)
            self._screen.found(self._ctx, found, f"choices[{index}].delta.reasoning")

    def _redactor(self, index: int) -> StreamRedactor | None:
        scanner = self._screen.scanner
        if scanner is None or self._screen.action == "log":
            return None  # logging needs no holding back: the whole answer is scanned at the end
        if index not in self._redactors:
            self._redactors[index] = StreamRedactor(scanner)
        return self._redactors[index]

    def _release(self, index: int) -> list[StreamEvent]:
        redactor = self._redactors.pop(index, None)
        if redactor is None:
            return []
        rest = redactor.flush()
        self._check(redactor, index)
        return [Delta(index=index, content=rest)] if rest else []

    def _check(self, redactor: StreamRedactor, index: int) -> None:
        if redactor.detected:
            found, redactor.detected = dict(redactor.detected), {}
            self._screen.found(self._ctx, found, f"choices[{index}].delta.content")
