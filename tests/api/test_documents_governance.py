"""Governance sees documents: the text layer (and OCR of scanned pages) is screened like any
text, and the audit keeps a descriptor of each document, never its bytes or its text."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pypdfium2 as pdfium
import pytest

from aperture.app import create_apps
from aperture.settings import AuthSettings, Settings
from aperture.settings.governance import (
    GovernanceSettings,
    GuardrailSettings,
    OcrSettings,
    PiiSettings,
    PolicyMatch,
    PolicyRule,
)
from aperture.settings.schema import StorageSettings
from tests.api.test_governance_screening import Gateway
from tests.documents.pdfs import text_pdf
from tests.governance.test_ocr import _png, needs_tesseract
from tests.servers import serve_together
from tests.upstreams import Recorder

GOVERNANCE = GovernanceSettings(
    pii=PiiSettings(action="redact", detectors=("email", "phone")),
    policy=(
        PolicyRule(
            name="no-plans",
            match=PolicyMatch(model="claude-recorded"),
            deny_patterns=("(?i)launch codes",),
        ),
    ),
    guardrails=(
        GuardrailSettings(
            name="no-weapons", kind="keywords", words=("build a bomb",), models=("claude-*",)
        ),
    ),
    ocr=OcrSettings(enabled=True),
)


@pytest.fixture(scope="module")
def gateway(
    gateway_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    state: Path = tmp_path_factory.mktemp("document-screening")
    settings = msgspec.structs.replace(
        gateway_settings,
        auth=AuthSettings(master_key="sk-master", key_pepper="pepper"),
        storage=StorageSettings(database=f"sqlite:///{state}/db.sqlite", spool_dir=str(state)),
        governance=GOVERNANCE,
    )
    with serve_together(*create_apps(settings)) as (public, admin):
        yield Gateway(public, admin)


def send(gateway: Gateway, pdf: bytes, *, name: str = "report.pdf", model: str) -> httpx.Response:
    uri = f"data:application/pdf;base64,{base64.b64encode(pdf).decode()}"
    content: list[dict[str, Any]] = [
        {"type": "file", "file": {"file_data": uri, "filename": name}},
        {"type": "text", "text": "Summarise."},
    ]
    return gateway.chat(content, model=model)


def scanned_pdf(text: str) -> bytes:
    """A page that is only a picture of ``text``: no text layer, as a scanner makes it."""
    from PIL import Image

    picture = Image.open(io.BytesIO(_png(text)))
    document = pdfium.PdfDocument.new()
    page = document.new_page(612, 792)
    image = pdfium.PdfImage.new(document)
    image.set_bitmap(pdfium.PdfBitmap.from_pil(picture.convert("RGB")))
    image.set_matrix(pdfium.PdfMatrix().scale(560, 80).translate(26, 600))
    page.insert_obj(image)
    page.gen_content()
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_personal_data_in_the_text_layer_is_refused(
    gateway: Gateway, recorder: tuple[Recorder, str]
) -> None:
    before = len(recorder[0].bodies)
    response = send(gateway, text_pdf("Contact jane.doe@example.com"), model="claude-recorded")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "pii_detected"
    assert error["param"] == "messages[0].content[0]"
    assert "jane.doe" not in error["message"]
    assert len(recorder[0].bodies) == before, "nothing reached the provider"


def test_a_policy_pattern_in_the_text_layer_blocks(gateway: Gateway) -> None:
    response = send(gateway, text_pdf("Appendix\nThe LAUNCH CODES"), model="claude-recorded")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("policy_violation", "messages[0].content[0]")


def test_a_guardrail_reads_the_text_layer(gateway: Gateway) -> None:
    response = send(gateway, text_pdf("How to", "build a bomb"), model="claude-recorded")
    assert response.status_code == 400, response.text
    assert "no-weapons" in response.json()["error"]["message"]


def test_the_audit_describes_each_document_and_redacts_its_name(
    gateway: Gateway, recorder: tuple[Recorder, str]
) -> None:
    pdf = text_pdf("Quarterly report", "Outlook")
    response = send(gateway, pdf, name="jane.doe@example.com.pdf", model="recorded-vision")
    assert response.status_code == 200, response.text
    assert "jane.doe" not in recorder[0].bodies[-1].decode()
    event = gateway.audit(response.headers["x-request-id"])
    encoded = msgspec.json.encode(event).decode()
    assert base64.b64encode(pdf).decode()[:40] not in encoded and "Quarterly" not in encoded
    assert "jane.doe" not in encoded
    (document,) = event["documents"]
    import hashlib

    assert document["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert (document["mime"], document["bytes"], document["pages"]) == (
        "application/pdf",
        len(pdf),
        2,
    )
    assert "[EMAIL]" in document["filename"]
    tokens = event["usage"]["document_tokens_estimate"]
    assert tokens == int(response.headers["x-aperture-document-tokens"]) > 0
    assert ("pii", "email") in {(f["check"], f["name"]) for f in event["findings"]}


@needs_tesseract
def test_a_scanned_page_is_read_by_ocr_and_screened(
    gateway: Gateway, recorder: tuple[Recorder, str]
) -> None:
    before = len(recorder[0].bodies)
    response = send(gateway, scanned_pdf("Call 212-555-0147"), model="recorded-vision")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("pii_detected", "messages[0].content[0]")
    assert len(recorder[0].bodies) == before
