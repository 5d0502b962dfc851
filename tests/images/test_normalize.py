"""Each provider family's limits, at their edges."""

from __future__ import annotations

import io
from typing import Any

import msgspec
import pytest
from PIL import Image

from aperture.images.limits import TargetImageLimits, limits_for, limits_for_provider
from aperture.images.normalize import (
    NormalizeOptions,
    needs_normalizing,
    normalize,
    strip_jpeg_metadata,
)
from aperture.settings import ProviderImageSettings, ProviderSettings
from tests import sample_images

DEFAULT = NormalizeOptions()


def run(data: bytes, mime: str, kind: str, options: NormalizeOptions = DEFAULT):  # type: ignore[no-untyped-def]
    with Image.open(io.BytesIO(data)) as image:
        size, frames = image.size, getattr(image, "n_frames", 1)
    return normalize(data, mime, size, frames, limits_for(kind), options)


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("kind", ["openai", "anthropic", "bedrock", "mistral", "cohere", "gemini"])
def test_an_acceptable_image_is_left_alone(kind: str) -> None:
    data = sample_images.png(100, 80)
    assert run(data, "image/png", kind) is None
    assert not needs_normalizing(data, "image/png", (100, 80), 1, limits_for(kind), DEFAULT)


@pytest.mark.parametrize("kind", ["anthropic", "bedrock"])
def test_anthropic_families_count_the_base64_string(kind: str) -> None:
    limits = limits_for(kind)
    raw_fits = limits.max_bytes * 3 // 4 - 1000  # fits as base64
    raw_over = limits.max_bytes * 3 // 4 + 1000  # fits raw, not as base64
    assert limits.wire_size(raw_fits) <= limits.max_bytes < limits.wire_size(raw_over)
    data = sample_images.noise_jpeg(1500, 1400)
    assert len(data) < raw_over
    result = run(data + bytes(raw_over - len(data)), "image/jpeg", kind)
    assert result is not None
    assert limits.wire_size(len(result.data)) <= limits.max_bytes
    assert "recompressed" in result.changes


def test_anthropic_lowers_the_side_cap_past_twenty_images() -> None:
    data = sample_images.png(2500, 100)
    assert run(data, "image/png", "anthropic", NormalizeOptions(image_count=20)) is None
    result = run(data, "image/png", "anthropic", NormalizeOptions(image_count=21))
    assert result is not None
    assert (result.width, result.height) == (2000, 80)


def test_gemini_takes_heic_but_not_gif() -> None:
    assert run(sample_images.heic(20, 20), "image/heic", "gemini") is None
    result = run(sample_images.gif(20, 20), "image/gif", "gemini")
    assert result is not None
    assert (result.mime, result.changes) == ("image/png", ("converted", "metadata_stripped"))


def test_xai_takes_only_png_and_jpeg() -> None:
    result = run(sample_images.webp(20, 10), "image/webp", "xai")
    assert result is not None
    assert result.mime == "image/jpeg"
    assert opened(result.data).size == (20, 10)


def test_transparency_survives_conversion_to_png() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(buffer, "WEBP", lossless=True)
    result = run(buffer.getvalue(), "image/webp", "xai")
    assert result is not None
    assert result.mime == "image/png"
    assert opened(result.data).mode == "RGBA"


@pytest.mark.parametrize(
    ("kind", "detail", "edge"),
    [
        ("openai", "low", 512),
        ("openai", "high", 2048),
        ("anthropic", None, 1568),
        ("mistral", None, 1540),
    ],
)
def test_optimize_downsizes_to_what_the_model_sees(kind: str, detail: str, edge: int) -> None:
    data = sample_images.png(3000, 1500)
    result = run(data, "image/png", kind, NormalizeOptions(detail=detail, optimize=True))  # type: ignore[arg-type]
    assert result is not None
    assert (result.width, result.height) == (edge, edge // 2)
    assert run(data, "image/png", kind, NormalizeOptions(detail=detail)) is None  # type: ignore[arg-type]


def test_provider_overrides_apply_over_the_kind() -> None:
    provider = ProviderSettings(
        name="p",
        kind="anthropic",
        images=ProviderImageSettings(max_side=500, accepted=("image/png",)),
    )
    limits = limits_for_provider(provider)
    assert limits.max_side == 500
    assert limits.accepted == frozenset({"image/png"})
    assert limits.counts_base64  # untouched fields keep the kind's value
    assert limits_for_provider(
        msgspec.structs.replace(provider, images=ProviderImageSettings())
    ) is limits_for("anthropic")


def test_metadata_stripping_keeps_colour_profiles_and_pixels() -> None:
    photo = sample_images.jpeg_with_exif(30, 20, orientation=1, gps=True)
    image = opened(photo)
    buffer = io.BytesIO()
    image.save(
        buffer, "JPEG", exif=image.getexif(), icc_profile=b"\x00" * 128 + b"acsp" + bytes(124)
    )
    with_icc = buffer.getvalue()
    stripped = strip_jpeg_metadata(with_icc)
    assert not opened(stripped).getexif()
    assert opened(stripped).info.get("icc_profile") == opened(with_icc).info.get("icc_profile")
    assert opened(stripped).tobytes() == opened(with_icc).tobytes()


def noisy_png(width: int, height: int, grain: int) -> bytes:
    """Noise ``grain`` pixels wide, upscaled: a PNG whose bytes fall slower than its pixels
    when downscaled, as a photo's do (grain 1 is plain noise, which falls faster)."""
    noise = Image.effect_noise((width // grain, height // grain), 60).convert("RGB")
    buffer = io.BytesIO()
    noise.resize((width, height)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


@pytest.mark.parametrize("grain", [1, 8, 32])
def test_a_large_png_over_a_small_cap_fits_without_a_full_size_encode(
    monkeypatch: pytest.MonkeyPatch, grain: int
) -> None:
    width, height = 2400, 1600
    data = noisy_png(width, height, grain)
    limits = TargetImageLimits(max_bytes=len(data) // 10, max_side=20_000)
    # Every PNG encode, counted through Pillow's own registry of encoders.
    encoded: list[tuple[int, int]] = []
    save_png = Image.SAVE["PNG"]

    def counting(image: Image.Image, *args: Any, **kwargs: Any) -> None:
        encoded.append(image.size)
        save_png(image, *args, **kwargs)

    monkeypatch.setitem(Image.SAVE, "PNG", counting)
    result = normalize(data, "image/png", (width, height), 1, limits, DEFAULT)
    assert result is not None
    assert limits.wire_size(len(result.data)) <= limits.max_bytes
    # Not needlessly small: it keeps at least a third of the bytes it was allowed.
    assert len(result.data) > limits.max_bytes / 3
    assert "downscaled" in result.changes
    # Few whole encodes, none at full size (bands of a few rows estimate that one), and in
    # all less work than encoding the image once at full size.
    whole = [size for size in encoded if size[1] > height // 8]
    assert 1 <= len(whole) <= 3, encoded
    assert max(w * h for w, h in whole) < width * height / 2, encoded
    assert sum(w * h for w, h in encoded) < width * height, encoded
