"""API keys, the admin API and the audit trail, through real servers and real databases."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from aperture.app import create_apps
from aperture.governance.keys import INVALID_KEY_MESSAGE
from aperture.settings import AuthSettings, Settings
from aperture.settings.schema import StorageSettings
from tests import sample_images
from tests.contract.services import fresh_postgres_url, postgres_server  # noqa: F401
from tests.servers import serve_together

MASTER = {"authorization": "Bearer sk-master"}
JPEG = sample_images.jpeg(64, 48)


class Gateway(msgspec.Struct):
    public: str
    admin: str

    def chat(self, key: str | None, model: str = "demo-vision", **extra: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        body = {
            "model": model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Describe the secret plan"},
                        {
                            "type": "image_url",
                            "image_url": {"url": sample_images.data_uri(JPEG, "image/jpeg")},
                        },
                    ],
                }
            ],
            **extra,
        }
        return httpx.post(
            f"{self.public}/v1/chat/completions", json=body, headers=headers, timeout=30
        )

    def admin_call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.admin}{path}", headers=MASTER, timeout=30, **kwargs)


def locked(settings: Settings, database: str, spool: Path) -> Settings:
    return msgspec.structs.replace(
        settings,
        auth=AuthSettings(master_key="sk-master", key_pepper="pepper"),
        storage=StorageSettings(database=database, spool_dir=str(spool)),
    )


def run_gateway(settings: Settings) -> Iterator[Gateway]:
    with serve_together(*create_apps(settings)) as (public_url, admin_url):
        yield Gateway(public_url, admin_url)


@pytest.fixture(scope="module")
def gateway(
    gateway_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("control-plane")
    yield from run_gateway(
        locked(gateway_settings, f"sqlite:///{state}/db.sqlite", state / "spool")
    )


def eventually(check: Callable[[], bool], timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_key_is_shown_once_and_stored_only_as_a_hash(gateway: Gateway) -> None:
    created = gateway.admin_call("POST", "/v1/admin/keys", json={"name": "ci", "tenant": "acme"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"].startswith(f"ap_{body['id']}_")
    assert "key_hash" not in body
    listed = gateway.admin_call("GET", "/v1/admin/keys").json()["data"]
    mine = next(k for k in listed if k["id"] == body["id"])
    assert "key" not in mine and "key_hash" not in mine
    assert body["key"] not in gateway.admin_call("GET", "/v1/admin/keys").text
    assert gateway.chat(body["key"]).status_code == 200


@pytest.mark.parametrize("key", [None, "wrong", "ap_000000000000_nope", "Bearer"])
def test_bad_keys_get_one_uniform_401(gateway: Gateway, key: str | None) -> None:
    response = gateway.chat(key)
    assert response.status_code == 401
    assert response.json()["error"] == {
        "type": "authentication_error",
        "code": "invalid_api_key",
        "message": INVALID_KEY_MESSAGE,
        "param": None,
    }


def test_revoked_and_expired_keys_are_refused_like_unknown_ones(gateway: Gateway) -> None:
    key = gateway.admin_call("POST", "/v1/admin/keys", json={"name": "temp"}).json()
    assert gateway.chat(key["key"]).status_code == 200
    revoked = gateway.admin_call("DELETE", f"/v1/admin/keys/{key['id']}")
    assert revoked.json()["revoked_at"] is not None
    assert gateway.chat(key["key"]).status_code == 401
    past = gateway.admin_call(
        "POST", "/v1/admin/keys", json={"name": "old", "expires_at": "2020-01-01T00:00:00Z"}
    ).json()
    assert gateway.chat(past["key"]).status_code == 401


def test_a_key_may_be_limited_to_models(gateway: Gateway) -> None:
    key = gateway.admin_call(
        "POST", "/v1/admin/keys", json={"name": "narrow", "models": ["vision-alias"]}
    ).json()["key"]
    assert gateway.chat(key, model="vision-alias").status_code == 200
    refused = gateway.chat(key, model="gpt-5.5-pro", max_tokens=300)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "x", "rpm_limit": 5}, None),
        ({"name": "x", "budget": {"usd": 1, "currency": "eur"}}, None),
        ({"tenant": "x"}, "name"),
        ({"name": "x", "rpm": "many"}, "rpm"),
    ],
)
def test_admin_bodies_reject_unknown_and_wrong_fields(
    gateway: Gateway, body: dict[str, Any], param: str | None
) -> None:
    response = gateway.admin_call("POST", "/v1/admin/keys", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param or "unknown field" in error["message"].lower()


def test_an_unknown_admin_path_is_404_and_a_wrong_method_405(gateway: Gateway) -> None:
    missing = gateway.admin_call("GET", "/v1/admin/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = gateway.admin_call("PATCH", "/v1/admin/keys")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_the_admin_api_needs_the_master_key(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.admin}/v1/admin/keys").status_code == 401
    key = gateway.admin_call("POST", "/v1/admin/keys", json={"name": "user"}).json()["key"]
    response = httpx.get(
        f"{gateway.admin}/v1/admin/keys", headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 401


def test_every_request_leaves_one_audit_event_without_bytes_or_secrets(gateway: Gateway) -> None:
    key = gateway.admin_call(
        "POST", "/v1/admin/keys", json={"name": "audited", "tenant": "t1"}
    ).json()
    response = gateway.chat(key["key"])
    request_id = response.headers["x-request-id"]

    def found() -> list[dict[str, Any]]:
        return gateway.admin_call("GET", f"/v1/admin/audit?request_id={request_id}").json()["data"]

    eventually(lambda: bool(found()))
    (event,) = found()
    assert event["event"] == "GATEWAY_RESPONSE"
    assert (event["key_id"], event["tenant"], event["status"]) == (key["id"], "t1", 200)
    assert (event["model"], event["provider"], event["upstream_model"]) == (
        "demo-vision",
        "emu",
        "emulator-vision",
    )
    assert event["text"] == ["Describe the secret plan"]
    (image,) = event["images"]
    assert (image["mime"], image["width"], image["height"], image["source"]) == (
        "image/jpeg",
        64,
        48,
        "inline",
    )
    assert event["usage"]["prompt_tokens"] > 0
    assert event["usage"]["image_tokens_estimate"] > 0
    everything = gateway.admin_call("GET", "/v1/admin/audit?format=jsonl&tenant=t1").text
    assert request_id in everything
    assert sample_images.data_uri(JPEG, "image/jpeg").split(",")[1][:32] not in everything
    assert key["key"] not in everything


def test_refused_requests_are_audited_too(gateway: Gateway) -> None:
    response = gateway.chat(None)
    request_id = response.headers["x-request-id"]
    # A 401 never reaches the pipeline; it is still one event with its code.
    eventually(
        lambda: bool(
            gateway.admin_call("GET", f"/v1/admin/audit?request_id={request_id}").json()["data"]
        )
    )
    (event,) = gateway.admin_call("GET", f"/v1/admin/audit?request_id={request_id}").json()["data"]
    assert (event["status"], event["error_code"]) == (401, "invalid_api_key")


def test_a_client_that_disconnects_mid_stream_is_still_audited(gateway: Gateway) -> None:
    key = gateway.admin_call("POST", "/v1/admin/keys", json={"name": "leaver"}).json()["key"]
    body = {
        "model": "slow-model",
        "messages": [{"role": "user", "content": "count"}],
        "stream": True,
    }
    headers = {"authorization": f"Bearer {key}"}
    with httpx.stream(
        "POST", f"{gateway.public}/v1/chat/completions", json=body, headers=headers
    ) as r:
        request_id = r.headers["x-request-id"]
        next(r.iter_lines())

    def event() -> list[dict[str, Any]]:
        return gateway.admin_call("GET", f"/v1/admin/audit?request_id={request_id}").json()["data"]

    eventually(lambda: bool(event()))
    assert event()[0]["status"] == 499


@pytest.fixture(params=["postgresql", "sqlite"])
def shared_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database two instances share: PostgreSQL, or one SQLite file on one host."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


def test_a_key_issued_on_one_instance_works_at_once_on_another(
    gateway_settings: Settings, shared_database: str, tmp_path: Path
) -> None:
    first = run_gateway(locked(gateway_settings, shared_database, tmp_path / "a"))
    second = run_gateway(locked(gateway_settings, shared_database, tmp_path / "b"))
    one, two = next(first), next(second)
    try:
        key = one.admin_call("POST", "/v1/admin/keys", json={"name": "shared"}).json()
        # At once: B has not polled since, its miss asks the database.
        assert two.chat(key["key"]).status_code == 200
        assert one.admin_call("DELETE", f"/v1/admin/keys/{key['id']}").status_code == 200
        # Revoked on A: B's poll drops the key it learned through a miss within the second.
        eventually(lambda: two.chat(key["key"]).status_code == 401, timeout_s=3)
        other = two.admin_call("POST", "/v1/admin/keys", json={"name": "back"}).json()
        assert one.chat(other["key"]).status_code == 200
        two.admin_call("DELETE", f"/v1/admin/keys/{other['id']}")
        eventually(lambda: one.chat(other["key"]).status_code == 401, timeout_s=3)
    finally:
        for generator in (first, second):
            generator.close()


def test_a_database_outage_during_a_key_miss_is_503_not_401(
    gateway_settings: Settings, tmp_path: Path
) -> None:
    database = tmp_path / "outage.db"
    gateways = run_gateway(locked(gateway_settings, f"sqlite:///{database}", tmp_path / "s"))
    gateway = next(gateways)
    try:
        known = gateway.admin_call("POST", "/v1/admin/keys", json={"name": "known"}).json()
        assert gateway.chat(known["key"]).status_code == 200
        outside = sqlite3.connect(database, timeout=30)
        outside.execute("ALTER TABLE changes RENAME TO changes_away")  # the change counter
        outside.commit()
        try:
            unseen = f"ap_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
            refused = gateway.chat(unseen)
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert (error["code"], error["type"]) == ("service_unavailable", "api_error")
            assert refused.headers["retry-after"] == "1"
            assert unseen not in refused.text
            assert gateway.chat(known["key"]).status_code == 200  # cached keys keep working
            assert gateway.chat("not-a-key").status_code == 401  # never needed the database
        finally:
            outside.execute("ALTER TABLE changes_away RENAME TO changes")
            outside.commit()
            outside.close()
        assert gateway.chat(unseen).status_code == 401
    finally:
        gateways.close()


SEED_ROUTE = {
    "id": "vision-route",
    "model_pattern": "gpt-4o*",
    "strategy": "weighted",
    "providers": [
        {"provider": "emu", "model": "emulator-vision", "weight": 60},
        {"provider": "claude-emu", "model": "claude-sonnet-4-5", "weight": 30},
        {"provider": "gemini-emu", "model": "gemini-2.5-flash", "weight": 10},
    ],
}


def test_routes_are_edited_live_in_the_seeds_shape(gateway: Gateway) -> None:
    master = "sk-master"
    assert gateway.chat(master, model="gpt-4o-live").status_code == 404
    created = gateway.admin_call("POST", "/v1/admin/routes", json=SEED_ROUTE)
    assert created.status_code == 201, created.text
    served = {
        gateway.chat(master, model="gpt-4o-live").headers["x-aperture-provider"] for _ in range(30)
    }
    assert served <= {"emu", "claude-emu", "gemini-emu"}
    assert len(served) >= 2
    assert (
        gateway.admin_call("GET", "/v1/admin/routes/vision-route").json()["strategy"] == "weighted"
    )
    assert "vision-route" in gateway.admin_call("GET", "/v1/admin/routes").text

    only_claude = {**SEED_ROUTE, "strategy": "priority", "providers": SEED_ROUTE["providers"][1:2]}
    assert (
        gateway.admin_call("PUT", "/v1/admin/routes/vision-route", json=only_claude).status_code
        == 200
    )
    assert gateway.chat(master, model="gpt-4o-live").headers["x-aperture-provider"] == "claude-emu"

    assert gateway.admin_call("POST", "/v1/admin/routes", json=SEED_ROUTE).status_code == 409
    assert gateway.admin_call("DELETE", "/v1/admin/routes/vision-route").status_code == 200
    assert gateway.chat(master, model="gpt-4o-live").status_code == 404
    assert gateway.admin_call("DELETE", "/v1/admin/routes/vision-route").status_code == 404


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({**SEED_ROUTE, "id": "r1", "colour": "red"}, None),
        (
            {**SEED_ROUTE, "id": "r2", "providers": [{"provider": "nowhere"}]},
            "providers[0].provider",
        ),
        ({**SEED_ROUTE, "id": "r3", "strategy": "random"}, "strategy"),
        ({"id": "r4", "model_pattern": "x"}, "providers"),
    ],
)
def test_bad_routes_are_refused_with_the_field(
    gateway: Gateway, body: dict[str, Any], param: str | None
) -> None:
    response = gateway.admin_call("POST", "/v1/admin/routes", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param or "unknown field" in error["message"].lower()


def test_models_are_added_live_and_listed(gateway: Gateway) -> None:
    model = {
        "name": "added-live",
        "provider": "emu",
        "upstream_model": "emulator-vision",
        "capabilities": ["vision"],
    }
    assert gateway.admin_call("POST", "/v1/admin/models", json=model).status_code == 201
    response = gateway.chat("sk-master", model="added-live")
    assert response.status_code == 200
    assert "#1 image/jpeg 64x48" in response.json()["choices"][0]["message"]["content"]
    listed = httpx.get(f"{gateway.public}/v1/models", headers=MASTER).json()["data"]
    assert "added-live" in {m["id"] for m in listed}
    assert gateway.admin_call("DELETE", "/v1/admin/models/added-live").status_code == 200
    assert gateway.chat("sk-master", model="added-live").status_code == 404


def test_a_model_added_live_may_use_the_responses_wire(gateway: Gateway) -> None:
    model = {"name": "live-responses", "provider": "emu", "upstream_model": "emulator-vision",
             "capabilities": ["vision"], "wire": "responses"}  # fmt: skip
    assert gateway.admin_call("POST", "/v1/admin/models", json=model).status_code == 201
    response = gateway.chat("sk-master", model="live-responses")
    assert response.status_code == 200, response.text
    assert "#1 image/jpeg 64x48" in response.json()["choices"][0]["message"]["content"]
    assert gateway.admin_call("DELETE", "/v1/admin/models/live-responses").status_code == 200
    refused = gateway.admin_call(
        "POST", "/v1/admin/models", json={**model, "provider": "claude-emu"}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "wire"


def test_routes_survive_a_restart_and_reach_every_instance(
    gateway_settings: Settings,
    fresh_postgres_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    first = run_gateway(locked(gateway_settings, fresh_postgres_url, tmp_path / "a"))
    one = next(first)
    second = run_gateway(locked(gateway_settings, fresh_postgres_url, tmp_path / "b"))
    two = next(second)
    try:
        route = {**SEED_ROUTE, "id": "shared", "model_pattern": "shared-*", "strategy": "priority"}
        assert one.admin_call("POST", "/v1/admin/routes", json=route).status_code == 201
        eventually(lambda: two.chat("sk-master", model="shared-x").status_code == 200, timeout_s=2)
    finally:
        first.close()
    third = run_gateway(locked(gateway_settings, fresh_postgres_url, tmp_path / "c"))
    try:
        assert next(third).chat("sk-master", model="shared-x").status_code == 200
    finally:
        second.close()
        third.close()


def test_an_admin_key_may_call_the_admin_api(gateway: Gateway) -> None:
    admin = gateway.admin_call("POST", "/v1/admin/keys", json={"name": "ops", "admin": True})
    assert admin.json()["admin"] is True
    headers = {"authorization": f"Bearer {admin.json()['key']}"}
    assert httpx.get(f"{gateway.admin}/v1/admin/keys", headers=headers).status_code == 200
    assert gateway.chat(admin.json()["key"]).status_code == 200
    gateway.admin_call("DELETE", f"/v1/admin/keys/{admin.json()['id']}")
    assert httpx.get(f"{gateway.admin}/v1/admin/keys", headers=headers).status_code == 401
