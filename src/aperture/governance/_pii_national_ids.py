"""National identity numbers: the ones whose shape and checksum make false positives rare.

Found anywhere in a text:

- US Social Security number, written with dashes (``536-90-4399``); stdnum refuses areas
  000, 666 and 9xx, group 00, serial 0000 and the published dummy numbers.
- UK National Insurance number (``AB 12 34 56 C``): no checksum, but a strict alphabet
  for the two prefix letters, a short list of forbidden prefixes and a suffix A-D.
- Spanish DNI (8 digits and a mod-23 check letter) and NIE (X/Y/Z, 7 digits, letter).
- Italian codice fiscale (16 characters with a fixed letter/digit layout and a check letter).
- Finnish henkilötunnus (a date, a century sign, a serial and a mod-31 check character).

Found only after a label (``BSN: ...``), because they are bare digit runs whose checksum
alone would flag one ordinary number in ten (or in a hundred):

- US SSN without dashes (``SSN 536904399``), Dutch BSN (11-proof), German Steuer-IdNr,
  French NIR (mod 97) and Polish PESEL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fi import hetu
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.pl import pesel
from stdnum.us import ssn

__all__ = ["NationalIdDetector"]

Validator = Callable[[str], bool]

_NINO_FORBIDDEN_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def _nino_is_valid(number: str) -> bool:
    return number[:2] not in _NINO_FORBIDDEN_PREFIXES


def _ssn_is_valid(number: str) -> bool:
    # stdnum's compact() drops dashes only; a labelled SSN may be written with spaces.
    return ssn.is_valid(number.replace(" ", ""))


# Unlabelled ids: (group name, pattern, validator). Validators get the value as written:
# stdnum's compact() drops each format's own separators (a HETU's "-" is its century sign).
_FREE: tuple[tuple[str, str, Validator], ...] = (
    ("ssn", r"\d{3}-\d{2}-\d{4}", _ssn_is_valid),
    (
        "nino",
        r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]",
        _nino_is_valid,
    ),
    ("dni", r"\d{8}-?[A-Z]", dni.is_valid),
    ("nie", r"[XYZ]-?\d{7}-?[A-Z]", nie.is_valid),
    (
        "codicefiscale",
        r"[A-Z]{6}[0-9LMNP-V]{2}[A-EHLMPR-T][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z]",
        codicefiscale.is_valid,
    ),
    ("hetu", r"[0-3]\d[01]\d{3}[-+A-FU-Y]\d{3}[0-9A-FHJ-NPR-Y]", hetu.is_valid),
)

# Labelled ids: (group name, label, pattern, validator).
_LABELLED: tuple[tuple[str, str, str, Validator], ...] = (
    ("ssn", r"ssn|social security (?:number|no)", r"\d{3}[ -]?\d{2}[ -]?\d{4}", _ssn_is_valid),
    ("bsn", r"bsn|burgerservicenummer|sofinummer", r"\d{4}\.?\d{2}\.?\d{3}", bsn.is_valid),
    (
        "idnr",
        r"steuer-?id(?:nr)?|(?:steuerliche )?identifikationsnummer|steueridentifikationsnummer",
        r"\d{2} ?\d{3} ?\d{3} ?\d{3}",
        idnr.is_valid,
    ),
    (
        "nir",
        r"nir|insee|s[ée]curit[ée] sociale|s[ée]cu",
        r"[1-478] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}",
        nir.is_valid,
    ),
    ("pesel", r"pesel", r"\d{11}", pesel.is_valid),
)

# Between a label and its value: punctuation, and a few words ("SSN is", "BSN-nummer:").
_LABEL_GAP = r"(?:-?(?:nummer|number|nr|no|num)\.?)?[\s:#=.-]{0,4}(?:(?:is|ist|est)\s+)?"
_LABEL_REACH = 48  # the longest label and gap, with room to spare
# Every label above contains one of these (lower case): a window without any has no label.
_LABEL_STEMS = (
    *("ssn", "social", "bsn", "burger", "sofi", "steuer", "identifikation"),
    *("nir", "insee", "écu", "ecu", "pesel"),
)

# The lookahead lets the regex engine skip to capitals and digits before the lookbehind.
_FREE_RE = re.compile(
    r"(?=[\dA-Z])(?<![\w-])(?:"
    + "|".join(f"(?P<{name}>{pattern})" for name, pattern, _ in _FREE)
    + r")(?![\w-])"
)
# Labelled values are found from the number (8+ digits at the start of a word; a cheap
# pass), then a label is looked for just before it: searching the labels themselves over the
# whole text costs ten times more.
_LABELLED_VALUE = re.compile(r"\d(?<![\w-]\d)(?:[ .-]?\d){7}")
_LABEL_BEFORE = re.compile(
    r"\b(?i:"
    + "|".join(f"(?P<{name}>{label})" for name, label, _, _ in _LABELLED)
    + rf"){_LABEL_GAP}$"
)
_VALUES = {name: re.compile(rf"(?:{pattern})(?![\w-])") for name, _, pattern, _ in _LABELLED}
# A name in both tables ("ssn") has the same validator in both.
_VALIDATORS: dict[str, Validator] = {name: valid for name, _, valid in _FREE} | {
    name: valid for name, _, _, valid in _LABELLED
}
_DIGIT = re.compile(r"\d")


class NationalIdDetector:
    """Every id above: one pass for free-standing ids, one for labelled numbers."""

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        if _DIGIT.search(text) is None:
            return
        for match in _FREE_RE.finditer(text):
            name = match.lastgroup
            if name is not None and _VALIDATORS[name](match.group(name)):
                yield match.span(name)
        for number in _LABELLED_VALUE.finditer(text):
            start = number.start()
            reach = max(0, start - _LABEL_REACH)
            before = text[reach:start].lower()
            if not any(stem in before for stem in _LABEL_STEMS):
                continue
            label = _LABEL_BEFORE.search(text, reach, start)
            if label is None or label.lastgroup is None:
                continue
            value = _VALUES[label.lastgroup].match(text, start)
            if value is not None and _VALIDATORS[label.lastgroup](value.group()):
                yield value.span()
