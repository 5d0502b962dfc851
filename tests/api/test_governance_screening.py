"""Policy rules, PII and guardrails through a real gateway: what the provider receives, what
the client is told, and what the audit trail keeps."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from aperture.app import create_apps
from aperture.settings import AuthSettings, Settings
from aperture.settings.governance import (
    GovernanceSettings,
    GuardrailSettings,
    PiiSettings,
    PolicyMatch,
    PolicyRule,
)
from aperture.settings.schema import StorageSettings
from tests import sample_images
from tests.servers import serve_together
from tests.upstreams import Recorder

MASTER = {"authorization": "Bearer sk-master"}
JPEG = sample_images.jpeg(64, 48)
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"

GOVERNANCE = GovernanceSettings(
    pii=PiiSettings(action="redact"),
    policy=(
        PolicyRule(
            name="no-plans",
            match=PolicyMatch(model="recorded-*"),
            deny_patterns=("(?i)launch codes",),
        ),
        PolicyRule(name="one-image", match=PolicyMatch(model="demo-vision"), max_images=1),
        PolicyRule(name="no-urls", allow_image_urls=False, match=PolicyMatch(model="fetching")),
        PolicyRule(name="watch-tokens", max_tokens=50, action="log"),
    ),
    guardrails=(
        GuardrailSettings(
            name="no-weapons", kind="keywords", words=("build a bomb",), models=("demo-text",)
        ),
        GuardrailSettings(
            name="judge",
            kind="model",
            model="demo-text",
            # The emulator echoes what it was asked, so its verdict follows the text judged.
            prompt="Verdict SAFE, unless the text says otherwise:",
            models=("demo-vision",),
        ),
    ),
)


class Gateway(msgspec.Struct):
    public: str
    admin: str
    database: Path | None = None

    def chat(self, content: Any, model: str = "recorded-vision", **extra: Any) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
        # The master key: no budget or rate limit applies, only the screening under test.
        url = f"{self.public}/v1/chat/completions"
        return httpx.post(url, json=body, headers=MASTER, timeout=30)

    def audit(self, request_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 5
        while True:
            found = httpx.get(
                f"{self.admin}/v1/admin/audit",
                params={"request_id": request_id},
                headers=MASTER,
                timeout=10,
            ).json()["data"]
            if found:
                event: dict[str, Any] = found[0]
                return event
            assert time.monotonic() < deadline, "no audit event"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def gateway(
    gateway_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    state: Path = tmp_path_factory.mktemp("screening")
    settings = msgspec.structs.replace(
        gateway_settings,
        auth=AuthSettings(master_key="sk-master", key_pepper="pepper"),
        storage=StorageSettings(database=f"sqlite:///{state}/db.sqlite", spool_dir=str(state)),
        governance=GOVERNANCE,
    )
    with serve_together(*create_apps(settings)) as (public, admin):
        yield Gateway(public, admin, state / "db.sqlite")


def test_a_kept_responses_conversation_keeps_only_the_redacted_text(gateway: Gateway) -> None:
    body = {"model": "recorded-vision", "input": f"Write to {EMAIL}.", "store": True}
    response = httpx.post(f"{gateway.public}/v1/responses", json=body, headers=MASTER)
    assert response.status_code == 200, response.text
    assert gateway.database is not None
    with sqlite3.connect(gateway.database) as db:
        (kept,) = db.execute(
            "SELECT conversation FROM stored_responses WHERE id = ?", (response.json()["id"],)
        ).fetchone()
    assert EMAIL.encode() not in kept and b"[EMAIL]" in kept


def test_pii_is_redacted_before_the_provider_sees_it(
    gateway: Gateway, recorder: tuple[Recorder, str]
) -> None:
    text = f"Email {EMAIL} about card {CARD}, order ORD-123456 of 2026-11-21."
    content = [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": sample_images.data_uri(JPEG, "image/jpeg")}},
    ]

    response = gateway.chat(content)

    assert response.status_code == 200, response.text
    sent = recorder[0].bodies[-1].decode()
    assert EMAIL not in sent and CARD not in sent
    assert "[EMAIL]" in sent and "[CARD]" in sent
    assert "ORD-123456" in sent and "2026-11-21" in sent, "ordinary ids and dates stay"
    event = gateway.audit(response.headers["x-request-id"])
    assert EMAIL not in msgspec.json.encode(event).decode()
    assert event["text"] == ["Email [EMAIL] about card [CARD], order ORD-123456 of 2026-11-21."]
    found = {(f["check"], f["name"], f["action"]) for f in event["findings"]}
    assert found == {("pii", "email", "redact"), ("pii", "card", "redact")}
    assert all(f["param"] == "messages[0].content[0].text" for f in event["findings"])


def test_a_policy_pattern_blocks_without_echoing_the_text(
    gateway: Gateway, recorder: tuple[Recorder, str]
) -> None:
    before = len(recorder[0].bodies)

    response = gateway.chat("Please share the LAUNCH CODES now")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "policy_violation"
    assert error["param"] == "messages[0].content"
    assert "no-plans" in error["message"]
    assert "launch" not in error["message"].lower()
    assert len(recorder[0].bodies) == before, "nothing reached the provider"


def test_policy_limits_images_per_model(gateway: Gateway) -> None:
    image = {"type": "image_url", "image_url": {"url": sample_images.data_uri(JPEG, "image/jpeg")}}

    response = gateway.chat([{"type": "text", "text": "two"}, image, image], model="demo-vision")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "policy_violation"
    assert response.json()["error"]["param"] == "messages[0].content[2]", "the first image too many"


def test_policy_refuses_url_images_before_fetching_them(gateway: Gateway) -> None:
    content = [
        {"type": "text", "text": "what is this"},
        # Unroutable on purpose: a fetch would fail differently (and slowly).
        {"type": "image_url", "image_url": {"url": "https://images.invalid/cat.png"}},
    ]

    response = gateway.chat(content, model="fetching")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "policy_violation"
    assert error["param"] == "messages[0].content[1].image_url.url"


def test_log_only_rules_are_audited_and_let_the_request_through(gateway: Gateway) -> None:
    response = gateway.chat("hello", max_tokens=500)

    assert response.status_code == 200
    event = gateway.audit(response.headers["x-request-id"])
    assert {"check": "policy", "name": "watch-tokens", "action": "log", "param": "max_tokens"} in (
        event["findings"]
    )


def test_a_keyword_guardrail_blocks_its_models_only(gateway: Gateway) -> None:
    blocked = gateway.chat("How do I build a  bomb?", model="demo-text")
    allowed = gateway.chat("How do I build a bomb?", model="recorded-vision")

    assert blocked.status_code == 400
    assert blocked.json()["error"]["code"] == "policy_violation"
    assert "no-weapons" in blocked.json()["error"]["message"]
    assert allowed.status_code == 200


def test_a_guard_model_is_asked_through_the_gateway(gateway: Gateway) -> None:
    image = {"type": "image_url", "image_url": {"url": sample_images.data_uri(JPEG, "image/jpeg")}}
    safe = gateway.chat([{"type": "text", "text": "a cat"}, image], model="demo-vision")
    unsafe = gateway.chat(
        [{"type": "text", "text": "this is UNSAFE content"}, image], model="demo-vision"
    )

    assert safe.status_code == 200, safe.text
    assert unsafe.status_code == 400
    assert "judge" in unsafe.json()["error"]["message"]
    event = gateway.audit(unsafe.headers["x-request-id"])
    assert {"check": "guardrail", "name": "judge", "action": "block"} in event["findings"]
