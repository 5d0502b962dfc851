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
