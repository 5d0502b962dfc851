"""The PII detectors: each finds the spans of one kind of value in a text.

Every detector is compiled once and follows the same shape: a cheap test that usually says
"nothing here" (a substring check or one compiled regex pass), then validation only for the
few candidates (Luhn, IIN ranges, mod-97, ``ipaddress``, libphonenumber). Detectors yield
offsets only: the matched value is never copied out of the text.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Protocol

from stdnum import iban, luhn

__all__ = [
    "CardDetector",
    "Detector",
    "EmailDetector",
    "IbanDetector",
    "IpDetector",
    "PhoneDetector",
    "SecretDetector",
    "Span",
]

Span = tuple[int, int]


class Detector(Protocol):
    def find(self, text: str) -> Iterator[Span]:
        """The (start, end) offsets of each value found, in any order, possibly overlapping."""
        ...


# -- email ----------------------------------------------------------------------------------

_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
# Found from the "@" (a literal the regex engine finds with a fast search), then the local
# part is read backwards from it: no attempt at every character of the text.
_EMAIL_DOMAIN = re.compile(r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}(?![\w-])")
_EMAIL_LOCAL = re.compile(rf"(?<![\w.!#$%&'*+/=?^`{{|}}~-]){_ATOM}(?:\.{_ATOM})*$")
_EMAIL_LOCAL_MAX = 64  # RFC 5321


class EmailDetector:
    """Dot-atom local part, dotted domain with an alphabetic TLD (no quoted or IP forms)."""

    def find(self, text: str) -> Iterator[Span]:
        if "@" not in text:
            return
        for domain in _EMAIL_DOMAIN.finditer(text):
            at = domain.start()
            local = _EMAIL_LOCAL.search(text, max(0, at - _EMAIL_LOCAL_MAX), at)
            if local is not None:
                yield local.start(), domain.end()


# -- phone ----------------------------------------------------------------------------------

# A run of digits and phone punctuation; a leading "+" or "(" is taken in below. The run
# starts with a digit so that the regex engine can skip ahead to digits quickly.
_PHONE_RUN = re.compile(r"\d[\d \t().\-/\u00a0]{5,28}\d")
_PHONE_MIN_DIGITS = 7
_DIGITS = re.compile(r"\d+")
_NEXT_PAREN = re.compile(r"\s\(")
# Not a phone when glued to a word, an id (#1234, ORD-1234), a price ($, €...), a dotted
# version or a path.
_PHONE_GLUE = frozenset("#$€£¥+./-_")
# libphonenumber does reject dates, but only after parsing them for every region.
_DATE = re.compile(r"\d{4}([-/.])\d{1,2}\1\d{1,2}|\d{1,2}([-/.])\d{1,2}\2\d{2,4}")
# libphonenumber looks a few characters past a number (a trailing ":30" makes it a time).
_PHONE_CONTEXT = 4


def _min_digits(region: str) -> int:
    from phonenumbers import PhoneMetadata

    metadata = PhoneMetadata.metadata_for_region(region)
    lengths = metadata.general_desc.possible_length if metadata and metadata.general_desc else ()
    return max(_PHONE_MIN_DIGITS, min(lengths, default=_PHONE_MIN_DIGITS))


class PhoneDetector:
    """libphonenumber's matcher at leniency VALID, run only on candidate windows.

    Running ``PhoneNumberMatcher`` over a whole prompt costs ~10 ms per kilobyte (it parses
    every digit run for the region); here it sees only runs with enough digits for the
    region, with a clean left edge, that are not dates.
    """

    def __init__(self, regions: tuple[str, ...]) -> None:
        # Imported here, by the one detector that needs it: libphonenumber is the ``pii``
        # extra (phonenumberslite), and a gateway without the phone detector never loads it.
        from phonenumbers import Leniency, PhoneNumberMatcher

        self._matcher = PhoneNumberMatcher
        self._valid = Leniency.VALID
        # "ZZ" (unknown region) still matches numbers written with a leading +.
        self._regions = tuple((region, _min_digits(region)) for region in regions or ("ZZ",))

    def find(self, text: str) -> Iterator[Span]:
        pos = 0
        while (run := _PHONE_RUN.search(text, pos)) is not None:
            start, end = run.span()
            if (tail := _DIGITS.match(text, end)) is not None:
                # The run stopped at its length cap inside a group of digits: a window that
                # ends mid-number would hide the number, and the next run would start glued.
                end = tail.end()
            pos = end
            if text[start - 1 : start] == "+":
                start -= 1
            if text[start - 1 : start] == "(":
                start -= 1
            before = text[start - 1 : start]
            if before and (before.isalnum() or before in _PHONE_GLUE):
                # Only the glued digits are skipped: "ORD-1234 212-555-0123" has a phone.
                glued = _DIGITS.match(text, run.start())
                pos = glued.end() if glued is not None else end
                continue
            if text[start] != "+" and (paren := _NEXT_PAREN.search(text, run.start(), end)):
                # "(212) 555-0123 (212) 555-0124": an opening parenthesis after a space
                # starts the next number (one written with + may have one: "+1 (212)").
                end = pos = paren.start()
            candidate = text[run.start() : end]
            digits = sum(ch.isdigit() for ch in candidate)
            if digits < _PHONE_MIN_DIGITS or _DATE.fullmatch(candidate):
                continue
            spans = self._match(text, start, end, digits)
            yield from spans
            # The run may hold a second number the matcher did not reach: look again from
            # the end of the last one found.
            pos = min(pos, max((span[1] for span in spans), default=pos))

    def _match(self, text: str, start: int, end: int, digits: int) -> list[Span]:
        window = text[start : end + _PHONE_CONTEXT]
        # An international number parses the same from every region: one pass is enough.
        international = window.startswith(("+", "(+"))
        regions = self._regions[:1] if international else self._regions
        spans: list[Span] = []
        for region, min_digits in regions:
            if digits < min_digits and not international:
                continue
            found = [
                (start + match.start, start + match.end)
                for match in self._matcher(window, region, leniency=self._valid)
            ]
            spans.extend(found)
            if any(s == start and e >= end for s, e in found):
                break  # other regions could only find the same run again
        spans.sort()
        return spans


# -- payment card ---------------------------------------------------------------------------

# Leading with a digit (the lookbehind then checks the character before it) lets the regex
# engine skip to digits instead of trying the lookbehind at every position.
_CARD = re.compile(
    r"\d(?<![\w.,-]\d)(?:"
    r"\d{12,18}"
    r"|\d{3}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{1,4}(?:(?P=s)\d{1,3})?"  # 4-4-4-4(-3)
    r"|\d{3}(?P<t>[ -])\d{6}(?P=t)\d{4,5}"  # Amex 4-6-5, Diners 4-6-4
    r")(?![\w]|[.,-]\d)"
)


def _known_iin(digits: str) -> bool:
    """Whether the number starts with the IIN of a card network and has one of its lengths."""
    length = len(digits)
    two, four = int(digits[:2]), int(digits[:4])
    three = int(digits[:3])
    return (
        (digits[0] == "4" and length in (13, 16, 19))  # Visa
        or ((51 <= two <= 55 or 2221 <= four <= 2720) and length == 16)  # Mastercard
        or (two in (34, 37) and length == 15)  # Amex
        or ((four == 6011 or two == 65 or 644 <= three <= 649) and length >= 16)  # Discover
        or (3528 <= four <= 3589 and length >= 16)  # JCB
        or ((two in (36, 38) or 300 <= three <= 305) and length >= 14)  # Diners
        or (two == 62 and length >= 16)  # UnionPay
    )


class CardDetector:
    """13 to 19 digits (plain, or grouped with one kind of separator), a network's IIN, Luhn."""

    def find(self, text: str) -> Iterator[Span]:
        for match in _CARD.finditer(text):
            digits = match.group().replace(" ", "").replace("-", "")
            if _known_iin(digits) and luhn.is_valid(digits):
                yield match.span()


# -- IBAN -----------------------------------------------------------------------------------

_IBAN = re.compile(
    r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"
    r"(?![A-Za-z0-9])"
)
_IBAN_MIN_CHARS = 15  # Norway's, the shortest


class IbanDetector:
    """Country code, check digits, BBAN, plain or in groups of four; validated by stdnum."""

    def find(self, text: str) -> Iterator[Span]:
        for match in _IBAN.finditer(text):
            start = match.start()
            candidate = match.group()
            # A spaced IBAN followed by a capitalised word ("... 0130 00 EUR") matches too
            # far; drop trailing groups until it validates or is too short to be one.
            while True:
                compact = candidate.replace(" ", "")
                if iban.is_valid(compact):
                    yield start, start + len(candidate)
                    break
                cut = candidate.rfind(" ")
                if cut < 0 or len(compact) <= _IBAN_MIN_CHARS:
                    break
                candidate = candidate[:cut]


# -- IP addresses ---------------------------------------------------------------------------

# Four dotted parts, not part of a longer dotted run (1.2.3.4.5) or of a word (v1.2.3.4).
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?![\w]|\.\d)")
_VERSION_BEFORE = re.compile(r"(?i)(?:\bv|\bver\.?|\bversion|\brelease)\s*$")
_IPV6 = re.compile(
    r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?:\.\d{1,3}){3})?(?![\w:])"
)
# Every IPv6 address has two colons at most four hex digits apart ("::" included); this
# literal-led search is a hundred times cheaper than the candidate regex on ordinary text.
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6_MIN_GROUPS = 3  # "a::b" is more often code (a C++ scope) than an address


class IpDetector:
    """IPv4 and IPv6 addresses, validated by ``ipaddress`` (which refuses leading zeros).

    A dotted quad is syntactically an IPv4 address; only one introduced as a version
    ("v1.2.3.4", "version 1.2.3.4") is not taken as one. Three-part versions never match.
    """

    def find(self, text: str) -> Iterator[Span]:
        if "." in text:
            yield from self._v4(text)
        if _IPV6_HINT.search(text):
            yield from self._v6(text)

    def _v4(self, text: str) -> Iterator[Span]:
        for match in _IPV4.finditer(text):
            start = match.start()
            if _VERSION_BEFORE.search(text, max(0, start - 10), start):
                continue
            try:
                ipaddress.IPv4Address(match.group())
            except ValueError:
                continue
            yield match.span()

    def _v6(self, text: str) -> Iterator[Span]:
        for match in _IPV6.finditer(text):
            candidate = match.group()
            groups = sum(1 for group in candidate.split(":") if group)
            if groups < _IPV6_MIN_GROUPS and "." not in candidate:
                continue
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            yield match.span()


# -- secrets --------------------------------------------------------------------------------

# Each shape is tried only where one of its literal prefixes occurs (str.find is a fast
# search), and only at the start of a word.
_SECRET_SHAPES: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    # OpenAI sk-, sk-proj-, sk-svcacct-; Anthropic sk-ant-api03-. Random keys have digits.
    (("sk-",), re.compile(r"sk-(?=[\w-]*\d)[A-Za-z0-9_-]{20,}(?![\w-])")),
    (
        ("sk_live_", "sk_test_", "rk_live_", "rk_test_"),  # Stripe secret and restricted
        re.compile(r"[sr]k_(?:live|test)_[0-9A-Za-z]{16,}(?![\w-])"),
    ),
    (("AKIA", "ASIA"), re.compile(r"A(?:KI|SI)A[0-9A-Z]{16}(?![\w-])")),  # AWS key ids
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), re.compile(r"gh[pousr]_[A-Za-z0-9]{36,}(?![\w-])")),
    (("github_pat_",), re.compile(r"github_pat_[A-Za-z0-9_]{22,}(?![\w-])")),
    (("xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-"), re.compile(r"xox[baprs]-[A-Za-z0-9-]{10,}")),
    (("AIza",), re.compile(r"AIza[0-9A-Za-z_-]{35}(?![\w-])")),  # Google API keys
    (("ap_",), re.compile(r"ap_[0-9a-f]{12}_[A-Za-z0-9_-]{43}(?![\w-])")),  # governance.keys
    (("eyJ",), re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*(?![\w-])")),
    # A PEM private key: through its END line, or over the base64 lines seen so far.
    (
        ("-----BEGIN ",),
        re.compile(
            r"-----BEGIN (?P<pem>(?:[A-Z0-9]+ )*)PRIVATE KEY-----"
            r"(?:[\s\S]*?-----END (?P=pem)PRIVATE KEY-----|(?:\r?\n[A-Za-z0-9+/=]+)*)"
        ),
    ),
)
# Only the token of an Authorization value is the secret: "Bearer [SECRET]" still reads.
_BEARER_MARKERS = ("Bearer", "bearer", "BEARER")
_BEARER = re.compile(r"(?i:bearer)\s+(?P<token>(?=[A-Za-z0-9._~+/-]*\d)[A-Za-z0-9._~+/-]{20,}=*)")


def _starts_word(text: str, pos: int) -> bool:
    return pos == 0 or not (text[pos - 1].isalnum() or text[pos - 1] in "_-")


class SecretDetector:
    """Credentials by shape: provider API keys, Aperture keys, JWTs, PEM keys, bearer tokens."""

    def find(self, text: str) -> Iterator[Span]:
        for markers, shape in _SECRET_SHAPES:
            for marker in markers:
                pos = text.find(marker)
                while pos >= 0:
                    match = shape.match(text, pos) if _starts_word(text, pos) else None
                    if match is not None:
                        yield match.span()
                    pos = text.find(marker, pos + 1)
        for marker in _BEARER_MARKERS:
            pos = text.find(marker)
            while pos >= 0:
                match = _BEARER.match(text, pos) if _starts_word(text, pos) else None
                if match is not None:
                    yield match.span("token")
                pos = text.find(marker, pos + 1)
