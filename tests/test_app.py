"""The app's two paths to a chat endpoint: straight (the default) and through the stack."""

from __future__ import annotations

import time
from collections.abc import Iterator

import msgspec
import pytest
from starlette.testclient import TestClient

from aperture.app import create_app
from aperture.model import ChatRequest
from aperture.pipeline import exchange
from aperture.settings import Settings

BODY = {"model": "demo-text", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def gateway(
    gateway_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    state = tmp_path_factory.mktemp("app-state")
    storage = msgspec.structs.replace(
        gateway_settings.storage, database=f"sqlite:///{state}/aperture.db", spool_dir=str(state)
    )
    settings = msgspec.structs.replace(gateway_settings, storage=storage)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_chat_answers_with_its_request_id(gateway: TestClient) -> None:
    response = gateway.post("/v1/chat/completions", json=BODY)
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"].startswith("req_")
    assert "server" not in response.headers  # the server software is not named
    assert response.json()["choices"][0]["message"]["role"] == "assistant"


def test_later_requests_have_ids_that_sort_later(gateway: TestClient) -> None:
    # Time first (the audit table's key then grows at its end), then random bits.
    ids = []
    for _ in range(3):
        ids.append(gateway.post("/v1/chat/completions", json=BODY).headers["x-request-id"])
        time.sleep(0.002)  # a new millisecond, so each id has a time of its own
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert all(len(each) == len("req_") + 12 + 16 for each in ids)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions", "/c1/chat"])
def test_other_methods_on_chat_paths_are_405(gateway: TestClient, path: str) -> None:
    response = gateway.get(path)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["x-request-id"]


def test_a_bug_in_a_chat_endpoint_is_a_logged_500_without_details(
    gateway: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: ChatRequest) -> tuple[str, ...]:
        raise KeyError("secret-detail")

    monkeypatch.setattr(exchange, "text_portions", broken)
    response = gateway.post("/v1/chat/completions", json=BODY)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "api_error"
    assert "secret-detail" not in response.text
    assert response.headers["x-request-id"].startswith("req_")
    assert "unexpected error on /v1/chat/completions" in caplog.text
    assert "secret-detail" in caplog.text  # the traceback is in the log
