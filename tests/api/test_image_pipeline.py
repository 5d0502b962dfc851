"""Images reach each provider in a form it accepts: through the real gateway over HTTP."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import openai
import pytest
from PIL import Image

from aperture.app import create_app
from aperture.settings import ImageDecodeSettings, Settings
from tests import sample_images
from tests.images.test_workers import photo, zero_png
from tests.servers import serve
from tests.upstreams import Recorder


def image_request(model: str, url: str, detail: str | None = None) -> dict[str, Any]:
    image: dict[str, Any] = {"url": url}
    if detail:
        image["detail"] = detail
    return {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is it?"},
                    {"type": "image_url", "image_url": image},
                ],
            }
        ],
    }


def sent_images(recorder: Recorder) -> list[str]:
    body = json.loads(recorder.bodies[-1])
    return [
        part["image_url"]["url"]
        for message in body["messages"]
        if isinstance(message["content"], list)
        for part in message["content"]
        if part["type"] == "image_url"
    ]


def decoded(url: str) -> tuple[str, bytes]:
    header, payload = url.split(",", 1)
    return header, base64.b64decode(payload)


@pytest.fixture
def rec(recorder: tuple[Recorder, str]) -> Recorder:
    return recorder[0]


def ok(http: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize(
    ("data", "mime", "sent_mime"),
    [
        (sample_images.bmp(40, 30), "image/bmp", "image/png"),
        (sample_images.heic(40, 30), "image/heic", "image/jpeg"),
        (sample_images.avif(40, 30), "image/avif", "image/jpeg"),
        (sample_images.tiff(40, 30), "image/tiff", "image/png"),
    ],
)
def test_formats_the_provider_rejects_are_converted(
    http: httpx.Client, rec: Recorder, data: bytes, mime: str, sent_mime: str
) -> None:
    response = ok(http, image_request("recorded-vision", sample_images.data_uri(data, mime)))
    header, sent = decoded(sent_images(rec)[0])
    assert header == f"data:{sent_mime};base64"
    assert Image.open(io.BytesIO(sent)).size == (40, 30)
    assert "converted" in response.headers["x-aperture-image-changes"]
    assert f"#1 {sent_mime} 40x30" in response.json()["choices"][0]["message"]["content"]


def test_an_animated_gif_is_reduced_to_its_first_frame(http: httpx.Client, rec: Recorder) -> None:
    gif = sample_images.data_uri(sample_images.gif(16, 16, frames=5), "image/gif")
    response = ok(http, image_request("recorded-vision", gif))
    _, sent = decoded(sent_images(rec)[0])
    assert getattr(Image.open(io.BytesIO(sent)), "n_frames", 1) == 1
    assert "first_frame" in response.headers["x-aperture-image-changes"]


def test_exif_orientation_is_applied_and_gps_stripped(http: httpx.Client, rec: Recorder) -> None:
    photo = sample_images.jpeg_with_exif(60, 40, orientation=6, gps=True)
    ok(http, image_request("recorded-vision", sample_images.data_uri(photo, "image/jpeg")))
    _, sent = decoded(sent_images(rec)[0])
    image = Image.open(io.BytesIO(sent))
    assert image.size == (40, 60)  # rotated upright
    assert not image.getexif()


def test_gps_is_stripped_without_re_encoding_when_upright(
    http: httpx.Client, rec: Recorder
) -> None:
    photo = sample_images.jpeg_with_exif(60, 40, orientation=1, gps=True)
    ok(http, image_request("recorded-vision", sample_images.data_uri(photo, "image/jpeg")))
    _, sent = decoded(sent_images(rec)[0])
    assert not Image.open(io.BytesIO(sent)).getexif()
    assert len(sent) < len(photo)
    # The scan data is untouched: the pixels are bit for bit the same.
    assert Image.open(io.BytesIO(sent)).tobytes() == Image.open(io.BytesIO(photo)).tobytes()


def test_images_over_a_providers_side_and_byte_caps_are_shrunk(
    http: httpx.Client, rec: Recorder
) -> None:
    noisy = sample_images.noise_jpeg(400, 300)
    response = ok(http, image_request("small-images", sample_images.data_uri(noisy, "image/jpeg")))
    _, sent = decoded(sent_images(rec)[0])
    image = Image.open(io.BytesIO(sent))
    assert max(image.size) <= 100
    assert len(sent) <= 6000
    assert "downscaled" in response.headers["x-aperture-image-changes"]


def test_an_image_within_limits_is_sent_exactly_as_received(
    http: httpx.Client, rec: Recorder
) -> None:
    uri = sample_images.data_uri(sample_images.png(30, 20), "image/png")
    response = ok(http, image_request("recorded-vision", uri))
    assert sent_images(rec) == [uri]
    assert "x-aperture-image-changes" not in response.headers
    assert int(response.headers["x-aperture-image-tokens"]) > 0


def test_fetch_policy_sends_bytes_never_the_users_url(
    http: httpx.Client, rec: Recorder, image_server: str
) -> None:
    url = f"{image_server}/photo.jpg?token=secret-presigned"
    response = ok(http, image_request("fetching", url))
    (sent,) = sent_images(rec)
    assert sent.startswith("data:image/jpeg;base64,")
    assert "secret-presigned" not in rec.bodies[-1].decode()
    assert "image/jpeg 300x200" in response.json()["choices"][0]["message"]["content"]


def test_auto_fetches_only_for_providers_that_need_bytes(
    http: httpx.Client, rec: Recorder, image_server: str
) -> None:
    url = f"{image_server}/photo.jpg"
    ok(http, image_request("auto-bytes", url))
    assert sent_images(rec)[0].startswith("data:image/jpeg;base64,")
    ok(http, image_request("auto-urls", url))
    assert sent_images(rec) == [url]


@pytest.mark.parametrize(
    ("path", "code", "fragment"),
    [
        ("/page.html", "image_fetch_failed", "not an image"),
        ("/missing.png", "image_fetch_failed", "404"),
        ("/redirect-private", "image_url_not_allowed", ""),
    ],
)
def test_fetch_failures_are_clear(
    http: httpx.Client, image_server: str, path: str, code: str, fragment: str
) -> None:
    response = http.post(
        "/v1/chat/completions", json=image_request("fetching", f"{image_server}{path}?sig=s3cret")
    )
    error = response.json()["error"]
    assert (response.status_code, error["code"]) == (400, code)
    assert fragment in error["message"]
    assert "s3cret" not in response.text
    assert error["param"] == "messages[0].content[1].image_url.url"


def test_private_addresses_are_refused_without_an_allowance(http: httpx.Client) -> None:
    for url in ("http://169.254.169.254/latest/meta-data", "http://[::ffff:10.0.0.1]/x.png"):
        response = http.post("/v1/chat/completions", json=image_request("fetching", url))
        assert response.json()["error"]["code"] == "image_url_not_allowed", url


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (sample_images.png_header_only(30000, 30000), "image/png"),
        (sample_images.gif(4, 4, frames=60), "image/gif"),
    ],
)
def test_bombs_are_refused_from_the_header(http: httpx.Client, data: bytes, mime: str) -> None:
    response = http.post(
        "/v1/chat/completions",
        json=image_request("recorded-vision", sample_images.data_uri(data, mime)),
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "image_too_large"
    assert http.get("/healthz").status_code == 200


def _cut(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (_cut(sample_images.noise_jpeg(300, 200)), "image/jpeg"),
        (_cut(sample_images.png(300, 200)), "image/png"),
        (sample_images.png(300, 200)[:-12], "image/png"),  # only IEND missing
        (_cut(sample_images.gif(40, 40, frames=3)), "image/gif"),
        (_cut(sample_images.webp(80, 60)), "image/webp"),
    ],
)
def test_truncated_images_are_refused_before_any_provider_sees_them(
    client: openai.OpenAI, rec: Recorder, data: bytes, mime: str
) -> None:
    sent_before = len(rec.bodies)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            **image_request("recorded-vision", sample_images.data_uri(data, mime))
        )
    assert caught.value.status_code == 400
    error = caught.value.response.json()["error"]
    assert error["code"] == "image_decode_error"
    assert error["param"] == "messages[0].content[1].image_url.url"
    assert "truncated" in error["message"]
    assert len(rec.bodies) == sent_before


@pytest.fixture(scope="module")
def limited_gateway(gateway_settings: Settings) -> Iterator[str]:
    """The test gateway with the default pixel limit and decoding capped at 200 MB a worker."""
    images = msgspec.structs.replace(
        gateway_settings.images,
        max_image_bytes=20_000_000,
        max_image_pixels=100_000_000,
        decode=ImageDecodeSettings(workers=1, max_memory_mb=200, max_cpu_s=20),
    )
    server = msgspec.structs.replace(gateway_settings.server, max_body_bytes=30_000_000)
    settings = msgspec.structs.replace(gateway_settings, images=images, server=server)
    with serve(create_app(settings)) as url:
        yield url


def test_decoding_memory_is_bounded_per_image(limited_gateway: str, rec: Recorder) -> None:
    with httpx.Client(base_url=limited_gateway, timeout=60) as http:
        # 64 MP of zeros: 200 KB on the wire, 256 MB once Pillow decodes it.
        bomb = sample_images.data_uri(zero_png(8000, 8000), "image/png")
        response = http.post("/v1/chat/completions", json=image_request("small-images", bomb))
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert error["code"] == "image_too_large"
        assert "200 MB" in error["message"]
        assert error["param"] == "messages[0].content[1].image_url.url"
        assert http.get("/healthz").status_code == 200
        # A 24 MP photo decodes reduced (JPEG draft) inside the same ceiling, as does a 6 MP PNG.
        for data, mime in ((photo(6000, 4000), "image/jpeg"), (zero_png(3000, 2000), "image/png")):
            uri = sample_images.data_uri(data, mime)
            response = ok(http, image_request("small-images", uri))
            assert "downscaled" in response.headers["x-aperture-image-changes"]
            _, sent = decoded(sent_images(rec)[0])
            assert max(Image.open(io.BytesIO(sent)).size) <= 100
