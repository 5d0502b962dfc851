"""Image-pipeline micro-benchmarks (issue: images): intake and downscale costs.

Run: .venv/bin/python bench/image_pipeline.py
Prints median timings over repeated runs and the peak Python allocation of one intake.

With pyvips importable (``pip install pyvips``; it needs the system libvips, Debian's
``libvips42``) it also compares, in CPU time (``time.process_time``: all threads of this
process, so libvips's own threads count), Aperture's Pillow path against libvips's
shrink-on-load ``thumbnail_buffer`` + encode for a photo-like 24 MP JPEG, PNG and WebP
downscaled to Anthropic's 1568 px.
"""

from __future__ import annotations

import base64
import io
import statistics
import time
import tracemalloc
from collections.abc import Callable

from PIL import Image

from aperture.images import ImageLimits, inspect_data_uri
from aperture.images.limits import CONVERTIBLE_MIME_TYPES, limits_for
from aperture.images.normalize import NormalizeOptions, normalize


def photo(width: int, height: int, target_bytes: int | None = None) -> bytes:
    """A photo-like JPEG: smooth gradients plus sensor-like noise."""
    base = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 24)
    image = Image.merge("RGB", (base, noise, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    for quality in (95, 90, 85, 80, 70, 60):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        if target_bytes is None or buffer.tell() <= target_bytes:
            return buffer.getvalue()
    return buffer.getvalue()


def median_ms(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    five_mb = photo(2600, 2000)
    while len(five_mb) < 5_000_000:
        five_mb = photo(int(2600 * 1.2), int(2000 * 1.2))
        break
    uri = f"data:image/jpeg;base64,{base64.b64encode(five_mb).decode()}"
    limits = ImageLimits(30_000_000, 200_000_000, CONVERTIBLE_MIME_TYPES)
    intake = median_ms(lambda: inspect_data_uri(uri, limits, param="p"), 30)
    tracemalloc.start()
    inspect_data_uri(uri, limits, param="p")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"intake of a {len(five_mb) / 1e6:.1f} MB JPEG data URI: {intake:.2f} ms median")
    print(f"  peak allocation during intake: {peak / 1e6:.1f} MB ({peak / len(five_mb):.2f}x)")

    big = photo(6000, 4000)
    size = (6000, 4000)
    for label, kind, options in (
        ("openai optimize (2048 px)", "openai", NormalizeOptions(optimize=True)),
        ("anthropic optimize (1568 px)", "anthropic", NormalizeOptions(optimize=True)),
        ("openai detail=low (512 px)", "openai", NormalizeOptions(detail="low", optimize=True)),
    ):
        ms = median_ms(lambda: normalize(big, "image/jpeg", size, 1, limits_for(kind), options), 7)
        print(f"24 MP ({len(big) / 1e6:.1f} MB JPEG) downscale, {label}: {ms:.0f} ms median")


def cpu_ms(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.process_time()
        work()
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times)


def photo_like(width: int, height: int) -> Image.Image:
    """Detail at two scales (coarse noise enlarged, fine noise), like a camera's 24 MP."""
    coarse = Image.effect_noise((width // 4, height // 4), 60).convert("RGB")
    fine = Image.effect_noise((width, height), 12).convert("RGB")
    return Image.blend(coarse.resize((width, height), Image.Resampling.BICUBIC), fine, 0.3)


def compare_libvips(runs: int = 5) -> None:
    try:
        import pyvips  # type: ignore[import-not-found]
    except (ImportError, OSError) as exc:
        print(f"pyvips not available ({exc}); skipping the libvips comparison")
        return
    pyvips.cache_set_max(0)  # no operation cache: every run decodes
    image = photo_like(6000, 4000)
    encoded = {}
    for mime, fmt, kw in (("image/jpeg", "JPEG", {"quality": 90}), ("image/png", "PNG", {}),
                          ("image/webp", "WEBP", {"quality": 90})):
        buffer = io.BytesIO()
        image.save(buffer, fmt, **kw)
        encoded[mime] = buffer.getvalue()
    suffix = {"image/jpeg": ".jpg[Q=85,optimize_coding]", "image/png": ".png",
              "image/webp": ".webp[Q=85]"}
    limits = limits_for("anthropic")
    options = NormalizeOptions(optimize=True)
    print(f"24 MP photo-like, to 1568 px (CPU ms, median of {runs}): Pillow | libvips")
    for mime, data in encoded.items():
        pillow = cpu_ms(lambda: normalize(data, mime, (6000, 4000), 1, limits, options), runs)
        vips = cpu_ms(lambda: pyvips.Image.thumbnail_buffer(data, 1568, size="down")
                      .write_to_buffer(suffix[mime]), runs)
        print(f"  {mime:11} {len(data) / 1e6:5.1f} MB: {pillow:6.0f} | {vips:6.0f}")


if __name__ == "__main__":
    main()
    compare_libvips()
