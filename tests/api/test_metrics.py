import re
from pathlib import Path

import httpx
import msgspec

from aperture.app import create_apps
from aperture.settings import Settings
from aperture.settings.schema import StorageSettings
from tests import sample_images
from tests.servers import serve_together


def value(text: str, metric: str, **labels: str) -> float:
    """The sum of ``metric``'s samples whose labels include ``labels`` (in any order)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(metric + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_tokens_images_attempts_and_breakers(http: httpx.Client) -> None:
    image = sample_images.data_uri(sample_images.jpeg(64, 48), "image/jpeg")
    before = http.get("/metrics").text
    body = {
        "model": "demo-vision",
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}}]}
        ],
    }
    assert http.post("/v1/chat/completions", json=body).status_code == 200
    assert http.post("/v1/chat/completions", json={**body, "model": "nope"}).status_code == 404
    # Counted after the response: poll briefly.
    for _ in range(100):
        after = http.get("/metrics").text
        if value(after, "aperture_rejections_total", code="model_not_found") > value(
            before, "aperture_rejections_total", code="model_not_found"
        ):
            break
    response = http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    def delta(metric: str, **labels: str) -> float:
        return value(after, metric, **labels) - value(before, metric, **labels)

    assert (
        delta(
            "aperture_requests_total",
            endpoint="/v1/chat/completions",
            model="demo-vision",
            status="200",
        )
        == 1
    )
    assert delta("aperture_images_total", mime="image/jpeg") == 1
    # The image estimate is a metric of its own, within the prompt tokens, not a kind of
    # them: summing aperture_tokens_total's kinds counts each token once.
    estimated = delta("aperture_image_tokens_estimated_total", model="demo-vision")
    assert 0 < estimated <= delta("aperture_tokens_total", model="demo-vision", kind="prompt")
    assert delta("aperture_tokens_total", model="demo-vision", kind="image_estimate") == 0
    assert (
        delta("aperture_upstream_attempts_total", target="emu/emulator-vision", outcome="ok") == 1
    )
    assert "aperture_gateway_overhead_seconds_bucket" in after
    # A state set: 1 for the current state, 0 for the others.
    for state, expected in (("closed", 1), ("half_open", 0), ("open", 0)):
        assert value(
            after, "aperture_breaker_state", target="emu/emulator-vision", state=state
        ) == (expected)
    assert "_created" not in after


def _settings(base: Settings, state: Path, **server: object) -> Settings:
    return msgspec.structs.replace(
        base,
        server=msgspec.structs.replace(base.server, **server),
        storage=StorageSettings(database=f"sqlite:///{state}/db.sqlite", spool_dir=str(state)),
    )


def test_metrics_can_move_to_the_admin_port(gateway_settings: Settings, tmp_path: Path) -> None:
    settings = _settings(gateway_settings, tmp_path, metrics_port="admin")
    with serve_together(*create_apps(settings)) as (public, admin):
        assert httpx.get(f"{public}/metrics").status_code == 404
        scraped = httpx.get(f"{admin}/metrics")
        assert scraped.status_code == 200
        assert "aperture_requests_total" in scraped.text or "# HELP" in scraped.text


def test_metrics_can_require_a_bearer_token(gateway_settings: Settings, tmp_path: Path) -> None:
    settings = _settings(gateway_settings, tmp_path, metrics_token="scrape-secret")
    with serve_together(*create_apps(settings)) as (public, admin):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-secret"}):
            refused = httpx.get(f"{public}/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "aperture_" not in refused.text
        good = httpx.get(f"{public}/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert good.status_code == 200 and "# HELP aperture_" in good.text
        # Not on the admin port unless moved there.
        assert httpx.get(f"{admin}/metrics").status_code == 404
