"""What the console reads and sends through the admin API: stats, the audit's way through
the gateway, and the playground, over real HTTP against the emulators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aperture.api.playground import elide_base64, shown_url
from aperture.settings import Settings
from tests import sample_images
from tests.api.test_control_plane import MASTER, Gateway, eventually, locked, run_gateway

BIG_JPEG = sample_images.jpeg(640, 480)


@pytest.fixture(scope="module")
def gateway(
    gateway_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("console-api")
    yield from run_gateway(
        locked(gateway_settings, f"sqlite:///{state}/db.sqlite", state / "spool")
    )


def chat_body(model: str, image: bytes = BIG_JPEG, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": sample_images.data_uri(image, "image/jpeg")},
                    },
                ],
            }
        ],
        "max_tokens": 50,
        **extra,
    }


def audited(gateway: Gateway, request_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def present() -> bool:
        answer = gateway.admin_call("GET", f"/v1/admin/audit?request_id={request_id}")
        found[:] = answer.json()["data"]
        return bool(found)

    eventually(present)
    return found[0]


def stats(gateway: Gateway) -> dict[str, Any]:
    answer = gateway.admin_call("GET", "/v1/admin/stats")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_stats_move_after_a_request(gateway: Gateway) -> None:
    before = stats(gateway)
    answer = httpx.post(
        f"{gateway.public}/v1/chat/completions",
        json=chat_body("small-images"),
        headers=MASTER,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    after = stats(gateway)
    assert sum(after["requests"].values()) == sum(before["requests"].values()) + 1
    assert after["requests"]["200"] >= 1
    assert after["images"]["count"] == before["images"]["count"] + 1
    assert after["images"]["bytes_saved"] > before["images"]["bytes_saved"]
    assert after["tokens"]["prompt"] > before["tokens"]["prompt"]
    assert after["latency"]["count"] == before["latency"]["count"] + 1
    assert after["latency"]["buckets"]["+Inf"] == after["latency"]["count"]
    assert after["attempts"]["recorded-small/emulator-vision"]["ok"] >= 1
    assert after["breakers"]["recorded-small/emulator-vision"] == "closed"
    assert set(after["spend"]) == {"last_hour_usd", "today_usd"}


def test_stats_need_an_admin_key(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.admin}/v1/admin/stats").status_code == 401


def test_the_audit_tells_the_route_every_attempt_and_what_changed_in_the_images(
    gateway: Gateway,
) -> None:
    route = {
        "id": "console-failover",
        "model_pattern": "console-failover",
        "strategy": "priority",
        "providers": [
            {"provider": "emu-503", "model": "emulator-vision", "capabilities": ["vision"]},
            {"provider": "recorded-small", "model": "emulator-vision", "capabilities": ["vision"]},
        ],
    }
    created = gateway.admin_call("POST", "/v1/admin/routes", json=route)
    assert created.status_code == 201, created.text
    answer = httpx.post(
        f"{gateway.public}/v1/chat/completions",
        json=chat_body("console-failover"),
        headers=MASTER,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    event = audited(gateway, answer.headers["x-request-id"])
    assert event["route"] == "console-failover"
    assert [(t["target"], t["outcome"]) for t in event["tried"]] == [
        ("emu-503/emulator-vision", "upstream_unavailable"),
        ("recorded-small/emulator-vision", "ok"),
    ]
    assert all(t["latency_ms"] >= 0 for t in event["tried"])
    assert "downscaled" in event["image_changes"]
    assert 0 < event["image_bytes_saved"] < len(BIG_JPEG)
    assert event["images"][0]["width"] == 640  # as the client sent it


def test_the_audit_filters_by_error_code(gateway: Gateway) -> None:
    failed = httpx.post(
        f"{gateway.public}/v1/chat/completions",
        json=chat_body("failing-400"),
        headers=MASTER,
        timeout=30,
    )
    assert failed.status_code == 400
    audited(gateway, failed.headers["x-request-id"])
    code = failed.json()["error"]["code"]
    found = gateway.admin_call("GET", f"/v1/admin/audit?error_code={code}").json()["data"]
    assert failed.headers["x-request-id"] in {e["request_id"] for e in found}
    assert {e["error_code"] for e in found} == {code}
    none = gateway.admin_call("GET", "/v1/admin/audit?error_code=no_such_code%25").json()
    assert none["data"] == []


def test_the_playground_runs_the_public_pipeline_and_shows_what_went_upstream(
    gateway: Gateway,
) -> None:
    answer = gateway.admin_call("POST", "/v1/admin/playground/chat", json=chat_body("small-images"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"].startswith("Saw 1 image")
    assert answer.headers["x-aperture-provider"] == "recorded-small"
    assert "downscaled" in answer.headers["x-aperture-image-changes"]
    request_id = answer.headers["x-request-id"]
    trace = gateway.admin_call("GET", f"/v1/admin/playground/{request_id}")
    assert trace.status_code == 200
    [sent] = trace.json()["upstream"]
    assert sent["target"] == "recorded-small/emulator-vision"
    assert sent["url"].endswith("/openai/v1/chat/completions")
    assert "headers" not in sent  # the provider's credentials stay out
    url = sent["body"]["messages"][0]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,…(") and url.endswith("base64 characters elided)")
    assert sent["body"]["model"] == "emulator-vision"
    event = audited(gateway, request_id)
    assert event["endpoint"] == "/v1/chat/completions" and event["key_id"] is None


def test_the_playground_streams_in_the_anthropic_dialect(gateway: Gateway) -> None:
    body = {
        "model": "demo-vision",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "Hello there"}],
    }
    with httpx.stream(
        "POST",
        f"{gateway.admin}/v1/admin/playground/messages",
        json=body,
        headers=MASTER,
        timeout=30,
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        text = "".join(answer.iter_text())
    events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    trace = gateway.admin_call("GET", f"/v1/admin/playground/{answer.headers['x-request-id']}")
    assert trace.json()["upstream"][0]["body"]["stream"] is True


def test_the_playground_answers_errors_in_the_dialect_and_needs_an_admin(
    gateway: Gateway,
) -> None:
    refused = gateway.admin_call(
        "POST", "/v1/admin/playground/chat", json={"model": "demo-text", "messages": "x"}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "messages"
    unknown = gateway.admin_call("POST", "/v1/admin/playground/nope", json={})
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "dialect"
    anonymous = httpx.post(f"{gateway.admin}/v1/admin/playground/chat", json={})
    assert anonymous.status_code == 401
    plain = gateway.admin_call("POST", "/v1/admin/keys", json={"name": "p"}).json()["key"]
    as_plain = httpx.post(
        f"{gateway.admin}/v1/admin/playground/chat",
        json=chat_body("demo-vision"),
        headers={"authorization": f"Bearer {plain}"},
    )
    assert as_plain.status_code == 401
    missing = gateway.admin_call("GET", "/v1/admin/playground/req_nope")
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://api.example.com/v1/chat", "https://api.example.com/v1/chat"),
        ("https://user:secret@h.example:8443/v1?key=abc", "https://h.example:8443/v1?…"),
        ("http://[::1]:9/v1", "http://[::1]:9/v1"),
    ],
)
def test_the_upstream_url_is_shown_without_credentials(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_base64_is_elided_wherever_it_sits() -> None:
    payload = "A" * 300
    body = {
        "uri": f"data:image/png;base64,{payload}",
        "bedrock": [{"image": {"source": {"bytes": payload}}}],
        "short": "aGVsbG8=",
        "text": "a sentence with spaces " * 20,
        "n": 3,
    }
    shown = elide_base64(body)
    assert shown["uri"] == "data:image/png;base64,…(300 base64 characters elided)"
    assert shown["bedrock"][0]["image"]["source"]["bytes"] == "…(300 base64 characters elided)"
    assert shown["short"] == "aGVsbG8=" and shown["text"] == body["text"] and shown["n"] == 3
