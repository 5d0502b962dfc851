import re

import httpx

from tests import sample_images


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
    assert delta("aperture_tokens_total", model="demo-vision", kind="image_estimate") > 0
    assert delta("aperture_tokens_total", model="demo-vision", kind="prompt") > 0
    assert (
        delta("aperture_upstream_attempts_total", target="emu/emulator-vision", outcome="ok") == 1
    )
    assert "aperture_gateway_overhead_seconds_bucket" in after
    assert 'aperture_breaker_state{target="emu/emulator-vision"} 0.0' in after
