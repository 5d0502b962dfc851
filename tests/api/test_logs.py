import hashlib
import logging
import time

import openai
import pytest

from tests import sample_images


def test_request_logs_describe_images_without_their_bytes_or_secrets(
    client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    data = sample_images.jpeg(64, 48)
    uri = sample_images.data_uri(data, "image/jpeg")
    with caplog.at_level(logging.INFO, logger="aperture"):
        client.chat.completions.create(
            model="recorded-vision",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": uri}}]}
            ],
        )
        # The record is written after the response has gone out.
        deadline = time.monotonic() + 5
        while not [r for r in caplog.records if r.name == "aperture.request"]:
            assert time.monotonic() < deadline, "no request log"
            time.sleep(0.01)
    (record,) = [r for r in caplog.records if r.name == "aperture.request"]
    (image,) = record.images  # type: ignore[attr-defined]
    assert image == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "mime": "image/jpeg",
        "width": 64,
        "height": 48,
        "bytes": len(data),
        "frames": 1,
        "source": "inline",
    }
    text = caplog.text + repr(vars(record))
    assert uri.split(",", 1)[1][:40] not in text
    assert "rec-key" not in text  # the provider credential of recorded-vision
