"""PII detection: each detector's true and false positives, redaction, findings that carry
no values, and a streamed answer redacted delta by delta without a split value slipping."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aperture.governance.pii import PLACEHOLDERS, Finding, PiiScanner, StreamRedactor
from aperture.settings.governance import PiiDetector, PiiSettings

SCANNER = PiiScanner(PiiSettings(phone_regions=("US", "GB")))
# Random-looking filler: credentials are assembled here, so the file holds no real-looking key.
FILL = "Ab3dE5fG7hJ9kL2mN4pQ6rS8tU1vW3xY5zA7bC9dE1fG3hJ5"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n"
    "-----END PRIVATE KEY-----"
)

TRUE_POSITIVES: dict[PiiDetector, tuple[str, ...]] = {
    "email": (
        "john.smith@example.com",
        "first.last+tag@sub.example.co.uk",
        "user_name-1@mail.example.org",
        "o'brien@example.ie",
    ),
    "phone": (
        "212-555-0123",
        "(212) 555-0123",
        "212.555.0123",
        "+1 212 555 0123",
        "+1-212-555-0123",
        "+44 20 7946 0958",
        "020 7946 0958",  # a national GB number: GB is in phone_regions
        "+33 1 42 68 53 00",  # any region, written with +
    ),
    "card": (
        "4111 1111 1111 1111",  # Visa
        "4111-1111-1111-1111",
        "5555555555554444",  # Mastercard 51-55
        "2223003122003222",  # Mastercard 2-series
        "3782 822463 10005",  # Amex, grouped 4-6-5
        "6011111111111117",  # Discover
        "3530111333300000",  # JCB
        "30569309025904",  # Diners, 14 digits
        "6200000000000005",  # UnionPay
    ),
    "iban": (
        "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
        "FR1420041010050500013M02606",
        "NL91 ABNA 0417 1643 00",
    ),
    "national_id": (
        "536-90-4399",  # US SSN
        "AB123456C",  # UK NINO
        "JG 10 37 51 A",
        "54362315K",  # ES DNI
        "X2482300W",  # ES NIE
        "RCCMNL83S18D969H",  # IT codice fiscale
        "131052-308T",  # FI henkilötunnus
    ),
    "ip": (
        "192.168.1.10",
        "8.8.8.8",
        "2001:db8::8a2e:370:7334",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "::ffff:192.0.2.1",
        "fe80::1ff:fe23:4567:890a",
    ),
    "secret": (
        "sk-proj-" + FILL[:40],
        "sk-ant-api03-" + FILL + "-" + FILL[:20],
        "AKIA" + "IOSFODNN7EXAMPLE",
        "ghp_" + FILL[:36],
        "github_pat_" + FILL[:30],
        "xoxb-1234567890-" + FILL[:12],
        "AIza" + FILL[:35],
        "sk_" + "live_" + FILL[:24],
        "rk_" + "live_" + FILL[:24],
        "ap_0123456789ab_" + FILL[:43],
        JWT,
        PEM,
    ),
}

LABELLED_IDS = (
    ("SSN: 536904399", "536904399"),
    ("my social security number is 536 90 4399", "536 90 4399"),
    ("BSN 111222333", "111222333"),
    ("burgerservicenummer: 1112.22.333", "1112.22.333"),
    ("Steuer-ID: 36574261809", "36574261809"),
    ("NIR: 2 95 10 99 126 111 93", "2 95 10 99 126 111 93"),
    ("PESEL 44051401359", "44051401359"),
)

ORDINARY = (
    "Order ORD-123456 shipped",
    "order id ORD-2125550123",  # a valid US number shape, but glued to an id
    "ticket #12345678",
    "ticket #2125550123",
    "due on 2026-11-21",
    "due on 21/11/2026, or 11/21/2026, or 21.11.2026",
    "at 2026-11-21T10:30:00Z",
    "at 10:30:45",
    "at 10:30",
    "version v1.2.3",
    "Python 3.11.7",
    "v1.2.3.4",
    "version 1.2.3.4",
    "1.2.3",
    "1.2.3.4.5",
    "costs $1,234.56",
    "costs €1.234,56",
    "total 1234567.89",
    "10,000,000 and 1,234,567,890",
    "id 123456789",  # plain 9 digits: no SSN without dashes or a label
    "id 123456782",  # 11-proof (a valid BSN shape), unlabelled
    "the year 2026",
    "ext 1234",
    "page 3 of 10; 5 x 12 = 60",
    "timestamp 1700000000",
    "ISBN 978-3-16-148410-0",
    "UUID 123e4567-e89b-12d3-a456-426614174000",
    "sha 9b74c9897bac770ffc029102a200c5de",
    "std::map<int, int> and a::b",
    "MAC 00:1A:2B:3C:4D:5E",
    "4111 1111 1111 1112",  # fails Luhn
    "1234 5678 9012 3456",  # no card network starts with 12
    "DE89 3704 0044 0532 0130 01",  # wrong IBAN check digits
    "000-12-3456",  # SSN areas 000, 666 and 9xx are never issued
    "666-12-3456",
    "900-12-3456",
    "123-00-4567",  # group 00
    "123-45-0000",  # serial 0000
    "QQ 12 34 56 C",  # NINO prefixes never start with Q
    "BG123456A",  # a forbidden NINO prefix
    "999.1.1.1",
    "01.02.03.04",
    "sk-learn and task-management and snap_shot",
    "Bearer token",
    "user@localhost and @mention",
    "phone: 555-0123",  # a 7-digit US local number is not a full number
    "(555) 0123",
)


def _found(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in SCANNER.scan(text)]


@pytest.mark.parametrize(
    ("kind", "value"),
    [(kind, value) for kind, values in TRUE_POSITIVES.items() for value in values],
)
def test_each_detector_finds_its_values(kind: PiiDetector, value: str) -> None:
    text = f"Please use {value} for this."
    assert _found(text) == [(kind, value)]


@pytest.mark.parametrize(("text", "value"), LABELLED_IDS)
def test_bare_digit_ids_are_found_after_their_label(text: str, value: str) -> None:
    assert _found(text) == [("national_id", value)]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_numbers_and_words_are_not_pii(text: str) -> None:
    assert SCANNER.scan(text) == []


def test_bearer_redacts_the_token_and_keeps_the_scheme() -> None:
    text = "Authorization: Bearer " + FILL[:32]
    assert SCANNER.redact(text, SCANNER.scan(text)) == "Authorization: Bearer [SECRET]"


def test_an_unterminated_pem_key_is_redacted_over_its_base64_lines() -> None:
    # Any line that could be base64 counts: an empty line ends the key.
    text = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc+/==\n\nThanks"
    assert SCANNER.redact(text, SCANNER.scan(text)) == "key:\n[SECRET]\n\nThanks"


def test_only_configured_detectors_run() -> None:
    scanner = PiiScanner(PiiSettings(detectors=("email", "email")))
    text = "john@example.com, 212-555-0123, 4111 1111 1111 1111, 8.8.8.8"
    assert scanner.kinds == ("email",)
    assert [f.kind for f in scanner.scan(text)] == ["email"]


def test_phone_regions_decide_national_formats_but_not_international_ones() -> None:
    us_only = PiiScanner(PiiSettings(detectors=("phone",), phone_regions=("US",)))
    none = PiiScanner(PiiSettings(detectors=("phone",), phone_regions=()))
    assert us_only.scan("call 020 7946 0958") == []
    assert [f.kind for f in us_only.scan("call +44 20 7946 0958")] == ["phone"]
    assert none.scan("call 212-555-0123") == []
    assert [f.kind for f in none.scan("call +1 212 555 0123")] == ["phone"]


def test_redaction_replaces_each_value_with_its_placeholder() -> None:
    text = (
        "Mail john.smith@example.com or call +1 212 555 0123; card 4111 1111 1111 1111, "
        "IBAN DE89 3704 0044 0532 0130 00, SSN 536-90-4399, from 10.0.0.7 with key "
        f"sk-proj-{FILL[:40]}."
    )
    assert SCANNER.redact(text, SCANNER.scan(text)) == (
        "Mail [EMAIL] or call [PHONE]; card [CARD], IBAN [IBAN], SSN [NATIONAL_ID], "
        "from [IP] with key [SECRET]."
    )
    assert SCANNER.redact(text, []) == text
    assert set(PLACEHOLDERS.values()) == {
        "[EMAIL]",
        "[PHONE]",
        "[CARD]",
        "[IBAN]",
        "[NATIONAL_ID]",
        "[IP]",
        "[SECRET]",
    }


def test_findings_are_offsets_only() -> None:
    text = "write to john.smith@example.com"
    [finding] = SCANNER.scan(text)
    assert finding == Finding("email", 9, 31)
    assert msgspec.structs.asdict(finding) == {"kind": "email", "start": 9, "end": 31}
    assert b"john" not in msgspec.json.encode(finding)
    with pytest.raises(AttributeError):
        finding.start = 0  # type: ignore[misc]  # frozen: checking that it is refused


def test_findings_from_several_detectors_never_overlap() -> None:
    # Digit runs next to each other, each of which several detectors look at.
    text = "ids 536-90-4399 212-555-0123 4111111111111111 DE89370400440532013000 1.2.3.4"
    findings = SCANNER.scan(text)
    assert [f.kind for f in findings] == ["national_id", "phone", "card", "iban", "ip"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(findings))


def _stream(text: str, size: int, redactor: StreamRedactor) -> list[str]:
    chunks = [redactor.feed(text[i : i + size]) for i in range(0, len(text), size)]
    return [*chunks, redactor.flush()]


@pytest.mark.parametrize("size", [1, 3, 7, 50, 1000])
def test_stream_redacts_values_split_across_deltas_and_sends_all_else(size: int) -> None:
    text = (
        "Sure! You can reach Dana at 212-555-0123 or dana.reyes@example.com, and the "
        f"token is {JWT} (keep it safe). Her card is 4111 1111 1111 1111 and her IBAN is "
        "DE89 3704 0044 0532 0130 00. That's all." + " More plain words follow here." * 5
    )
    redactor = StreamRedactor(SCANNER)
    chunks = _stream(text, size, redactor)
    assert "".join(chunks) == SCANNER.redact(text, SCANNER.scan(text))
    assert redactor.detected == {"phone": 1, "email": 1, "secret": 1, "card": 1, "iban": 1}
    for value in ("212", "555", "0123", "dana", "eyJ", "4111", "3704"):
        assert not any(value in chunk for chunk in chunks)


@pytest.mark.parametrize("size", [1, 9, 64])
def test_stream_holds_a_pem_key_from_its_first_line_to_its_last(size: int) -> None:
    body = "\n".join(["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" + FILL] * 12)
    text = f"Here it is:\n-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\nBye."
    redactor = StreamRedactor(SCANNER)
    assert "".join(_stream(text, size, redactor)) == "Here it is:\n[SECRET]\nBye."
    assert redactor.detected == {"secret": 1}


def test_stream_holds_only_a_bounded_tail() -> None:
    redactor = StreamRedactor(SCANNER, hold=16, step=8)
    sent = "".join(redactor.feed(word + " ") for word in ["lorem"] * 40)
    assert len("lorem " * 40) - len(sent) <= 16 + 8
    assert sent + redactor.flush() == "lorem " * 40


def test_stream_keeps_a_labelled_id_with_its_label() -> None:
    text = "The patient's social security number is 536 90 4399, noted. " * 2
    for size in (1, 5, 13):
        chunks = _stream(text, size, StreamRedactor(SCANNER))
        assert "".join(chunks) == SCANNER.redact(text, SCANNER.scan(text))
        assert "4399" not in "".join(chunks)


def test_stream_past_max_hold_sends_the_placeholder_and_drops_the_rest_of_the_value() -> None:
    key = "sk-" + FILL * 3  # longer than max_hold: it cannot be held whole
    redactor = StreamRedactor(SCANNER, hold=8, step=4, max_hold=64)
    chunks = _stream(f"key {key} done, and more text to send", 5, redactor)
    assert "".join(chunks) == "key [SECRET] done, and more text to send"
    assert redactor.detected == {"secret": 1}


def test_stream_redactor_checks_its_bounds() -> None:
    with pytest.raises(ValueError, match="hold"):
        StreamRedactor(SCANNER, hold=64, step=32, max_hold=64)


# -- properties -----------------------------------------------------------------------------

VALUES = [value for values in TRUE_POSITIVES.values() for value in values]
VALUES += [text for text, _ in LABELLED_IDS]
words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12
) | st.sampled_from(ORDINARY)
texts = st.lists(words | st.sampled_from(VALUES), max_size=12).map(" ".join)


def _undetected(text: str, findings: list[Finding]) -> str:
    """The text outside the findings, pieces kept apart: a value found here too was written
    a second time in a form no detector takes (glued to an id: "ORD-2125550123")."""
    bounds = [0, *(b for f in findings for b in (f.start, f.end)), len(text)]
    return "\0".join(text[a:b] for a, b in zip(bounds[::2], bounds[1::2], strict=True))


@given(texts)
def test_redacted_text_never_contains_a_detected_value(text: str) -> None:
    findings = SCANNER.scan(text)
    assert all(0 <= f.start < f.end <= len(text) for f in findings)
    assert all(a.end <= b.start for a, b in itertools.pairwise(findings))
    redacted = SCANNER.redact(text, findings)
    undetected = _undetected(text, findings)
    for finding in findings:
        value = text[finding.start : finding.end]
        assert value not in redacted or value in undetected


@given(texts, st.integers(min_value=1, max_value=40))
def test_stream_never_sends_a_value_the_whole_text_scan_finds(text: str, size: int) -> None:
    sent = "".join(_stream(text, size, StreamRedactor(SCANNER, hold=64, step=8)))
    findings = SCANNER.scan(text)
    undetected = _undetected(text, findings)
    for finding in findings:
        value = text[finding.start : finding.end]
        assert value not in sent or value in undetected
