"""PII in text: find it, redact it, and redact a streamed answer without letting a value
split across two deltas slip through.

A ``PiiScanner`` is built once from ``PiiSettings`` with only the configured detectors
(see ``_pii_detectors`` and ``_pii_national_ids`` for what each one accepts). Scanning is on
the request path, so every detector starts with a test that is cheap on ordinary text.
Findings carry offsets, never the value: a finding can be logged or audited as it is.
Offsets count code points, as Python string indices do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import msgspec

from aperture.settings.governance import ALL_PII_DETECTORS, PiiDetector, PiiSettings

if TYPE_CHECKING:
    from aperture.governance._pii_detectors import Detector

__all__ = ["PLACEHOLDERS", "Finding", "PiiScanner", "StreamRedactor"]

PLACEHOLDERS: Mapping[PiiDetector, str] = {kind: f"[{kind.upper()}]" for kind in ALL_PII_DETECTORS}
"""What ``redact`` writes in place of each kind of value: ``[EMAIL]``, ``[NATIONAL_ID]``..."""

_WHITESPACE = (" ", "\n", "\t", "\r")
# How much of the text already sent a stream scan reads again: the longest label before a
# national id (see _pii_national_ids) with room to spare.
_CONTEXT = 64


class Finding(msgspec.Struct, frozen=True, gc=False):
    """One detected value: which detector found it and where (``text[start:end]``)."""

    kind: PiiDetector
    start: int
    end: int


def _detector(kind: PiiDetector, settings: PiiSettings) -> Detector:
    # Imported here, when a scanner is built: a gateway without PII scanning starts without
    # the detectors and their national-id checksum library.
    from aperture.governance._pii_detectors import (
        CardDetector,
        EmailDetector,
        IbanDetector,
        IpDetector,
        PhoneDetector,
        SecretDetector,
    )
    from aperture.governance._pii_national_ids import NationalIdDetector

    match kind:
        case "email":
            return EmailDetector()
        case "phone":
            return PhoneDetector(settings.phone_regions)
        case "card":
            return CardDetector()
        case "iban":
            return IbanDetector()
        case "national_id":
            return NationalIdDetector()
        case "ip":
            return IpDetector()
        case "secret":
            return SecretDetector()


class PiiScanner:
    """The configured detectors, compiled once; ``scan`` and ``redact`` are thread-safe."""

    __slots__ = ("_detectors",)

    def __init__(self, settings: PiiSettings) -> None:
        kinds = dict.fromkeys(settings.detectors)  # ordered and deduplicated
        self._detectors = tuple((kind, _detector(kind, settings)) for kind in kinds)

    @property
    def kinds(self) -> tuple[PiiDetector, ...]:
        """The detectors this scanner runs."""
        return tuple(kind for kind, _ in self._detectors)

    def scan(self, text: str) -> list[Finding]:
        """Every value found, ordered by position and never overlapping.

        Values found by two detectors at overlapping places (a number that is both a phone
        and an id) become one finding over their union, named for the earliest and longest:
        redacting both halves separately could leave part of one of them in clear.
        """
        spans = [
            (start, end, kind)
            for kind, detector in self._detectors
            for start, end in detector.find(text)
            if end > start
        ]
        if not spans:
            return []
        spans.sort(key=lambda span: (span[0], -span[1]))
        findings: list[Finding] = []
        start, end, kind = spans[0]
        for next_start, next_end, next_kind in spans[1:]:
            if next_start < end:
                end = max(end, next_end)
                continue
            findings.append(Finding(kind, start, end))
            start, end, kind = next_start, next_end, next_kind
        findings.append(Finding(kind, start, end))
        return findings

    def redact(self, text: str, findings: Iterable[Finding]) -> str:
        """``text`` with each finding (ordered, as ``scan`` returns them) replaced by its
        placeholder."""
        pieces: list[str] = []
        pos = 0
        for finding in findings:
            if finding.end <= pos:
                continue
            pieces.append(text[pos : finding.start])
            pieces.append(PLACEHOLDERS[finding.kind])
            pos = finding.end
        if not pieces:
            return text
        pieces.append(text[pos:])
        return "".join(pieces)


class StreamRedactor:
    """Redacts a streamed text delta by delta: ``feed`` returns what is safe to send now,
    ``flush`` the rest once the stream ends.

    A value may arrive split across deltas ("212-55" then "5-0123"), so the last ``hold``
    characters are held back and scanned again with the next delta. The cut between what
    is sent and what is held never falls inside a word (a key or a JWT arrives as one
    unbroken run) nor inside a finding (a phone number contains spaces). Every detected
    value is shorter than ``hold``, or a single word, or (a PEM key) found from its first
    line and held from there on, so none of it is sent before it can be recognised.

    The end of what was sent (redacted) is scanned again with the buffer, so that a label
    ("social security number is") or what a number is glued to ("ORD-") still counts once
    it has been sent. The hold only grows past ``hold`` while one word or key keeps
    growing; past ``max_hold`` the buffer is sent anyway, redacted as far as it can be, and
    the rest of a value cut there is dropped rather than sent in clear.

    The buffer is scanned once at least ``step`` more characters can be sent, not on every
    delta: models send a few characters at a time, and each scan re-reads the held tail.
    """

    __slots__ = (
        "_context",
        "_continues",
        "_hold",
        "_max_hold",
        "_pending",
        "_scanner",
        "_step",
        "detected",
    )

    def __init__(
        self, scanner: PiiScanner, *, hold: int = 64, step: int = 32, max_hold: int = 16_384
    ) -> None:
        if not (hold > 0 and step > 0 and hold + step < max_hold):
            raise ValueError("StreamRedactor needs hold > 0, step > 0, hold + step < max_hold")
        self._scanner = scanner
        self._hold = hold
        self._step = step
        self._max_hold = max_hold
        self._pending = ""
        self._context = ""
        self._continues = False
        self.detected: dict[PiiDetector, int] = {}
        """How many values of each kind were redacted so far (for the log and audit)."""

    def feed(self, delta: str) -> str:
        """The text that is safe to send after ``delta`` (often empty), already redacted."""
        if self._continues:
            delta = self._drop_continuation(delta)
        buffer = self._pending + delta
        if len(buffer) < self._hold + self._step:
            self._pending = buffer
            return ""
        findings = self._scan(buffer)
        cut = self._safe_cut(buffer, findings)
        if cut == 0 and len(buffer) > self._max_hold:
            cut = self._forced_cut(buffer, findings)
        self._pending = buffer[cut:]
        return self._emit(buffer[:cut], [f for f in findings if f.start < cut])

    def flush(self) -> str:
        """Everything still held, redacted; the redactor is then empty."""
        buffer, self._pending, self._continues = self._pending, "", False
        return self._emit(buffer, self._scan(buffer)) if buffer else ""

    def _scan(self, buffer: str) -> list[Finding]:
        """The findings in ``buffer``, read after the end of what was already sent."""
        shift = len(self._context)
        if not shift:
            return self._scanner.scan(buffer)
        return [
            # A value that began in the sent text: its rest is redacted from the buffer.
            Finding(f.kind, max(0, f.start - shift), f.end - shift)
            for f in self._scanner.scan(self._context + buffer)
            if f.end > shift
        ]

    def _safe_cut(self, buffer: str, findings: list[Finding]) -> int:
        cut = len(buffer) - self._hold
        if not (buffer[cut - 1].isspace() or buffer[cut].isspace()):
            # Back to the last whitespace, so that no word is split (-1 + 1: send nothing).
            cut = max(buffer.rfind(ch, 0, cut) for ch in _WHITESPACE) + 1
        for finding in findings:
            if finding.start < cut < finding.end:
                return finding.start  # findings are disjoint: only one can straddle
        return cut

    def _forced_cut(self, buffer: str, findings: list[Finding]) -> int:
        cut = len(buffer) - self._hold
        for finding in findings:
            if finding.start < cut < finding.end:
                # Send the finding's placeholder now; the value may still be growing.
                self._continues = finding.end == len(buffer)
                return finding.end
        return cut

    def _drop_continuation(self, delta: str) -> str:
        """The rest of a value that was already replaced by its placeholder: up to the next
        whitespace, it is not sent."""
        ends = [i for i in (delta.find(ch) for ch in _WHITESPACE) if i >= 0]
        if not ends:
            return ""
        self._continues = False
        return delta[min(ends) :]

    def _emit(self, text: str, findings: list[Finding]) -> str:
        for finding in findings:
            self.detected[finding.kind] = self.detected.get(finding.kind, 0) + 1
        redacted = self._scanner.redact(text, findings)
        # Kept redacted: what the client already has, never a value it was spared.
        self._context = (self._context + redacted)[-_CONTEXT:]
        return redacted
