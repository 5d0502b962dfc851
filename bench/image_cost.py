"""Where an image request's CPU goes inside Aperture, stage by stage, in CPU time.

    .venv/bin/python bench/image_cost.py                 # 1, 4, 16 MB, 15 runs each
    .venv/bin/python bench/image_cost.py --mb 4 --runs 31

The same functions the gateway runs on one chat request carrying one noise JPEG: decode the
OpenAI-shaped body (which keeps the image's decoded bytes), image intake (sniff, measure;
``intake_decoding``: the same with its own strict base64 decode, as for a body the decoder
could not splice), the normalising check for
the target, and the upstream body for an OpenAI-compatible and for an Anthropic target. Each
stage is timed with ``time.process_time`` (CPU time of this process, so a neighbour's load
inflates it far less than wall time) and the median over runs is reported, as ms and as ms
per MB of image. The HTTP server and client (reading the body, sending it on) are not in
here: ``bench/run``'s image scenarios measure the whole path.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from aperture.dialects.openai.inbound import parse_chat_request
from aperture.images import ImageLimits, inspect_data_uri
from aperture.images.limits import CONVERTIBLE_MIME_TYPES, limits_for
from aperture.images.normalize import NormalizeOptions, needs_normalizing
from aperture.media.payloads import Payloads
from aperture.model import Image, Target
from aperture.pipeline.images import replace_images
from aperture.providers.anthropic import AnthropicProvider
from aperture.providers.openai import OpenAIProvider
from aperture.settings import ProviderSettings


def noise_jpeg(target_bytes: int) -> bytes:
    """Incompressible: random noise, quality 90, about ``target_bytes`` long."""
    import io

    from PIL import Image as PILImage

    rng = random.Random(20261120)
    side = 600
    data = b""
    for _ in range(8):
        img = PILImage.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=90)
        data = buffer.getvalue()
        if abs(len(data) - target_bytes) / target_bytes < 0.03:
            break
        side = max(64, int(side * (target_bytes / len(data)) ** 0.5))
    return data


def body_for(jpeg: bytes, images: int = 1) -> bytes:
    uri = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    content: list[dict[str, Any]] = [{"type": "text", "text": "Describe this image."}]
    content += [{"type": "image_url", "image_url": {"url": uri}} for _ in range(images)]
    return json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": content}], "max_tokens": 32},
        separators=(",", ":"),
    ).encode()


def cpu_ms(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.process_time()
        work()
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times)


def stages(body: bytes, runs: int) -> dict[str, float]:
    limits = ImageLimits(50_000_000, 200_000_000, CONVERTIBLE_MIME_TYPES)
    openai_target = Target(ProviderSettings(name="up", kind="openai", api_key="k"), "m")
    claude_target = Target(ProviderSettings(name="c", kind="anthropic", api_key="k"), "m")
    payloads = Payloads()
    request, _ = parse_chat_request(body, payloads)
    image = request.messages[0].content[1]  # type: ignore[index]
    assert isinstance(image, Image)
    # As served: intake takes the bytes the body's decoder decoded (``Payloads``).
    kept = payloads.take(image.url)
    assert kept is not None, "the decoder keeps the image's bytes"
    checked = inspect_data_uri(image.url, limits, param="p", decoded=kept)
    ready = replace_images(request, {(0, 1): Image(checked.url, None, checked.info)})
    info = checked.info
    needs = needs_normalizing(
        checked.data,
        info.mime,
        (info.width, info.height),
        info.frames,
        limits_for("openai"),
        NormalizeOptions(),
    )
    assert not needs, "the bench image must pass through unchanged"
    return {
        "decode_body": cpu_ms(lambda: parse_chat_request(body, Payloads()), runs),
        "intake": cpu_ms(
            lambda: inspect_data_uri(image.url, limits, param="p", decoded=kept), runs
        ),
        "intake_decoding": cpu_ms(lambda: inspect_data_uri(image.url, limits, param="p"), runs),
        "encode_openai": cpu_ms(lambda: OpenAIProvider().build_request(ready, openai_target), runs),
        "encode_anthropic": cpu_ms(
            lambda: AnthropicProvider().build_request(ready, claude_target), runs
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="*", default=[1, 4, 16])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    from aperture.runtime import tune_allocator

    tune_allocator()  # the heap `aperture serve` runs with: no fresh mmap per large buffer
    print(f"{'MB':>5} {'stage':<18} {'ms':>8} {'ms/MB':>7}")
    for mb in args.mb:
        jpeg = noise_jpeg(int(mb * 1_000_000))
        size = len(jpeg) / 1e6
        result = stages(body_for(jpeg), args.runs)
        for name, ms in {
            **result,
            "total_openai": result["decode_body"] + result["intake"] + result["encode_openai"],
        }.items():
            print(f"{size:5.1f} {name:<18} {ms:8.2f} {ms / size:7.2f}")


if __name__ == "__main__":
    main()
