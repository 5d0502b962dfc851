"""Scenario (g): the image cost-growth curve and the translated path, for ``harness.py``.

Each point is one request shape sent sequentially (``wrk -t1 -c1``, ``lua/post.lua``) to
each contender and to the upstream directly; what a gateway adds is its p50 minus the direct
path's p50 for the same point, reported per MB of image:

- pass-through, one image of 1, 4 and 16 MB (noise JPEGs: incompressible, so no contender
  can shrink them), OpenAI shape in and out (the instant upstream on ``UP_FAST``);
- pass-through, 4 and 16 images of 1 MB in one request (the cost per image);
- translated, OpenAI shape in, Anthropic Messages out (nginx's canned Anthropic answer on
  ``UP_ANTHROPIC``), one 1 MB image and four: sizes under Anthropic's 5 MB base64 cap, so the
  gateway converts the shape and never the pixels. The direct path sends the Anthropic body.

``ratio`` is translated over pass-through at the same image bytes (the translated path's
target is ≤ 1.5×).
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

SCENARIO = "g_image_curve"


class Point(NamedTuple):
    key: str
    label: str
    image_mb: int
    images: int
    translated: bool

    @property
    def total_mb(self) -> int:
        return self.image_mb * self.images


POINTS = (
    Point("1mb", "1 image, 1 MB", 1, 1, False),
    Point("4mb", "1 image, 4 MB", 4, 1, False),
    Point("16mb", "1 image, 16 MB", 16, 1, False),
    Point("4x1mb", "4 images of 1 MB", 1, 4, False),
    Point("16x1mb", "16 images of 1 MB", 1, 16, False),
    Point("t1mb", "translated, 1 image, 1 MB", 1, 1, True),
    Point("t4x1mb", "translated, 4 images of 1 MB", 1, 4, True),
)
# Translated point -> the pass-through point of the same bytes.
PAIRS = {"t1mb": "1mb", "t4x1mb": "4x1mb"}


def noise_jpeg(path: Path, megabytes: int) -> bytes:
    """A JPEG of random noise (quality 90) of about ``megabytes`` MB, cached in ``path``."""
    if path.exists():
        return path.read_bytes()
    from PIL import Image

    target = megabytes * 1_000_000
    rng = random.Random(20261204 + megabytes)
    side = int(600 * megabytes**0.5)
    for _ in range(8):
        img = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        img.save(path, "JPEG", quality=90)
        size = path.stat().st_size
        if abs(size - target) / target < 0.03:
            break
        side = max(64, int(side * (target / size) ** 0.5))
    return path.read_bytes()


def _openai_body(model: str, b64: str, images: int) -> bytes:
    content: list[dict[str, Any]] = [{"type": "text", "text": "Describe these images."}]
    url = f"data:image/jpeg;base64,{b64}"
    content += [{"type": "image_url", "image_url": {"url": url}} for _ in range(images)]
    return json.dumps({"model": model, "max_tokens": 32,
                       "messages": [{"role": "user", "content": content}]},
                      separators=(",", ":")).encode()


def _anthropic_body(model: str, b64: str, images: int) -> bytes:
    content: list[dict[str, Any]] = [{"type": "text", "text": "Describe these images."}]
    source = {"type": "base64", "media_type": "image/jpeg", "data": b64}
    content += [{"type": "image", "source": source} for _ in range(images)]
    return json.dumps({"model": model, "max_tokens": 32,
                       "messages": [{"role": "user", "content": content}]},
                      separators=(",", ":")).encode()


def prepare(work: Path, upstream_model: str) -> dict[str, Any]:
    """Write every point's body for the direct path and for the gateways; return the facts.

    Bodies go to ``work/bodies/curve-<who>-<point>.json``; ``who`` is ``direct`` or
    ``gateway`` (every gateway gets the same body: models ``bench-text``, ``bench-claude``).
    """
    (work / "bodies").mkdir(parents=True, exist_ok=True)
    images: dict[int, str] = {}
    facts: dict[str, Any] = {}
    for point in POINTS:
        if point.image_mb not in images:
            data = noise_jpeg(work / f"curve-{point.image_mb}mb.jpg", point.image_mb)
            images[point.image_mb] = base64.b64encode(data).decode()
            facts[f"{point.image_mb}mb_jpeg_bytes"] = len(data)
        b64 = images[point.image_mb]
        if point.translated:
            direct = _anthropic_body(upstream_model, b64, point.images)
            gateway = _openai_body("bench-claude", b64, point.images)
        else:
            direct = _openai_body(upstream_model, b64, point.images)
            gateway = _openai_body("bench-text", b64, point.images)
        (work / "bodies" / f"curve-direct-{point.key}.json").write_bytes(direct)
        (work / "bodies" / f"curve-gateway-{point.key}.json").write_bytes(gateway)
    return facts


def run(contender: str, port: int, work: Path, *, direct_ports: tuple[int, int],
        translated: bool, measure: Callable[[str, str, bool], dict[str, Any]]) -> dict[str, Any]:
    """Every point against one contender; ``measure(url, body_path, translated)`` runs wrk.

    ``direct_ports`` is (OpenAI-shaped upstream, Anthropic upstream) for the direct path;
    ``translated`` says whether this gateway has an Anthropic provider to translate to.
    """
    who = "direct" if contender == "direct" else "gateway"
    out: dict[str, Any] = {}
    for point in POINTS:
        if point.translated and not translated:
            out[point.key] = {"na": "no anthropic provider"}
            continue
        if contender == "direct":
            target = direct_ports[1] if point.translated else direct_ports[0]
            path = "/v1/messages" if point.translated else "/v1/chat/completions"
        else:
            target, path = port, "/v1/chat/completions"
        body = str(work / "bodies" / f"curve-{who}-{point.key}.json")
        out[point.key] = measure(f"http://127.0.0.1:{target}{path}", body, point.translated)
    return out


def summarize(curve: dict[str, dict[str, Any]], mb: Callable[[Point], float]) -> dict[str, Any]:
    """Added p50 per point and per MB for each gateway, and the translated/pass-through
    ratios; ``mb(point)`` is the point's real image megabytes."""
    direct = curve.get("direct", {})
    summary: dict[str, Any] = {}
    for contender, points in curve.items():
        if contender == "direct":
            continue
        rows: dict[str, Any] = {}
        for point in POINTS:
            got, base = points.get(point.key, {}), direct.get(point.key, {})
            if "latency_ms" not in got or "latency_ms" not in base:
                continue
            failed = got.get("error_count", 0)
            if failed:
                # An error answers faster than a proxied image: no figure, the failure shown.
                rows[point.key] = {"failed": f"{failed} errors in {got.get('requests', 0)} "
                                             "requests", "errors": failed}
                continue
            added = got["latency_ms"]["p50"] - base["latency_ms"]["p50"]
            rows[point.key] = {"added_p50_ms": round(added, 2),
                               "added_ms_per_mb": round(added / mb(point), 2),
                               "errors": got.get("error_count", 0)}
        for translated, passthrough in PAIRS.items():
            both = [rows.get(translated, {}), rows.get(passthrough, {})]
            if all("added_p50_ms" in row for row in both) and both[1]["added_p50_ms"] > 0:
                rows[translated]["ratio_to_passthrough"] = round(
                    rows[translated]["added_p50_ms"] / rows[passthrough]["added_p50_ms"], 2)
        summary[contender] = rows
    return summary


def markdown(results: dict[str, Any]) -> str:
    """The (g) table: per point, each contender's added p50 (ms, ms/MB), direct's p50."""
    curve = results.get("scenarios", {}).get(SCENARIO, {})
    summary = results.get("image_curve_summary", {})
    if not curve:
        return ""
    gateways = [c for c in curve if c != "direct"]
    head = "| point | direct p50 (ms) | " + " | ".join(
        f"{g} added p50 (ms) | {g} ms/MB" for g in gateways) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(gateways))]
    for point in POINTS:
        base = curve.get("direct", {}).get(point.key, {}).get("latency_ms", {}).get("p50")
        cells = [point.label, f"{base:.2f}" if base is not None else "—"]
        for g in gateways:
            row = summary.get(g, {}).get(point.key)
            if row is None:
                cells += ["n/a", "n/a"]
                continue
            if "failed" in row:
                cells += [f"failed: {row['failed']}", "—"]
                continue
            ratio = row.get("ratio_to_passthrough")
            cells += [f"{row['added_p50_ms']:.2f}" + (f" ({ratio}× pass-through)" if ratio else ""),
                      f"{row['added_ms_per_mb']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
