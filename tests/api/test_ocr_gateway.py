"""OCR through a real gateway: images are decoded for OCR in the memory-capped decode pool, so
a bomb under the pixel limit costs a worker, not the gateway; text read from an image is
screened like any other."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from aperture.app import create_app
from aperture.settings import Settings
from aperture.settings.governance import GovernanceSettings, OcrSettings, PiiSettings
from aperture.settings.schema import ImageDecodeSettings, StorageSettings
from tests import sample_images
from tests.governance.test_ocr import (
    BOMB,
    POOL_MB,
    _png,
    needs_tesseract,
    peak_rss_mb,
    peak_rss_reset,
)
from tests.servers import serve

# Without tesseract the gateway starts with OCR off (and says so): nothing to test here.
pytestmark = needs_tesseract


@pytest.fixture(scope="module")
def gateway(gateway_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("ocr-gateway")
    images = msgspec.structs.replace(
        gateway_settings.images,
        max_image_pixels=100_000_000,
        decode=ImageDecodeSettings(workers=1, max_memory_mb=POOL_MB),
    )
    settings = msgspec.structs.replace(
        gateway_settings,
        images=images,
        storage=StorageSettings(
            database=f"sqlite:///{state / 'gateway.db'}", spool_dir=str(state / "spool")
        ),
        governance=GovernanceSettings(
            ocr=OcrSettings(enabled=True), pii=PiiSettings(action="block", detectors=("phone",))
        ),
    )
    with serve(create_app(settings)) as url:
        yield url


def chat(gateway: str, image: bytes) -> httpx.Response:
    content: list[dict[str, Any]] = [
        {"type": "text", "text": "What does it say?"},
        {"type": "image_url", "image_url": {"url": sample_images.data_uri(image, "image/png")}},
    ]
    body = {"model": "recorded-vision", "messages": [{"role": "user", "content": content}]}
    return httpx.post(f"{gateway}/v1/chat/completions", json=body, timeout=60)


def test_a_phone_number_in_an_image_is_read_and_blocked(gateway: str) -> None:
    refused = chat(gateway, _png("Call me at 212-555-0123"))
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == (
        "pii_detected",
        "messages[0].content[1].image_url.url",
    )
    assert chat(gateway, _png("nothing to see")).status_code == 200


def test_a_bomb_for_ocr_costs_the_gateway_no_memory(gateway: str) -> None:
    measured = peak_rss_reset()
    before = peak_rss_mb() if measured else 0.0
    # OCR fails on the worker's memory ceiling (and is logged); the image itself is fine
    # for the provider, so the request goes on: an unreadable image hides no text.
    answered = chat(gateway, BOMB)
    assert answered.status_code == 200, answered.text
    if measured:
        # The gateway runs in this process: decoded here, the peak would rise by 250 MB.
        assert peak_rss_mb() - before < 100
    assert chat(gateway, _png("Call me at 212-555-0123")).status_code == 400
