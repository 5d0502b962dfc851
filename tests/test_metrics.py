"""Metrics in one process; summed over workers is tested with real workers in test_cli."""

from __future__ import annotations

from pathlib import Path

import pytest

from aperture.metrics import MULTIPROCESS_DIR_ENV, Metrics


@pytest.mark.anyio
async def test_one_process_reports_its_own_counts() -> None:
    metrics = Metrics(environ={})
    metrics.request("/v1/chat/completions", "m", 200, 0.05, 0.001)
    text = (await metrics.render()).decode()
    assert (
        'aperture_requests_total{endpoint="/v1/chat/completions",model="m",status="200"} 1.0'
        in text
    )


def test_a_shared_directory_set_too_late_is_refused(tmp_path: Path) -> None:
    # This interpreter imported prometheus_client without the variable: its values live in
    # memory, and a summed /metrics would silently miss them.
    with pytest.raises(RuntimeError, match=MULTIPROCESS_DIR_ENV):
        Metrics(environ={MULTIPROCESS_DIR_ENV: str(tmp_path)})


@pytest.mark.anyio
async def test_a_snapshot_folds_the_series_the_console_reads() -> None:
    metrics = Metrics(environ={})
    metrics.request("/v1/chat/completions", "a", 200, 0.05, 0.001)
    metrics.request("/v1/messages", "b", 200, 0.2, 0.002)
    metrics.request("/v1/messages", "b", 429, 0.003, 0.003)
    metrics.rejection("rate_limit_exceeded")
    metrics.count_tokens("a", "prompt", 100)
    metrics.count_tokens("b", "completion", 7)
    metrics.count_tokens("a", "image_estimate", 85)
    metrics.image("image/png", 1000)
    metrics.image_bytes_saved(400)
    metrics.image_bytes_saved(0)  # nothing saved counts nothing
    metrics.attempt("emu/m", "ok", 0.04)
    metrics.attempt("emu/m", "upstream_unavailable", 0.01)

    async def state(key: str) -> str:
        return "half_open"

    metrics.watch_breakers(lambda: ["emu/m"], state)
    snap = await metrics.snapshot()
    assert snap["requests"] == {"200": 2.0, "429": 1.0}
    assert snap["errors"] == {"rate_limit_exceeded": 1.0}
    assert snap["latency"]["count"] == 3.0
    assert snap["latency"]["sum"] == pytest.approx(0.253)
    assert snap["latency"]["buckets"]["0.005"] == 1.0  # cumulative, over both endpoints
    assert snap["latency"]["buckets"]["+Inf"] == 3.0
    assert snap["overhead"]["sum"] == pytest.approx(0.006)
    assert snap["tokens"] == {"prompt": 100.0, "completion": 7.0, "image_estimate": 85.0}
    assert snap["images"] == {"count": 1.0, "bytes": 1000.0, "bytes_saved": 400.0}
    assert snap["attempts"] == {"emu/m": {"ok": 1.0, "upstream_unavailable": 1.0}}
    assert snap["breakers"] == {"emu/m": "half_open"}
