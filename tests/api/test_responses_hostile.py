"""Hostile bodies on /v1/responses and count_tokens: a clear 4xx with its code and param,
never a 500, and nothing echoed without bound."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from aperture.app import create_app
from aperture.settings import parse_settings


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    state: Path = tmp_path_factory.mktemp("hostile")
    settings = parse_settings(
        f'demo: true\nstorage: {{database: "sqlite:///{state}/a.db", spool_dir: "{state}"}}\n',
        {},
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _body(**fields: object) -> bytes:
    return json.dumps({"model": "demo-vision", **fields}).encode()


def _image(url: str) -> bytes:
    part = {"type": "input_image", "image_url": url, "detail": "auto"}
    return json.dumps(
        {"model": "demo-vision", "input": [{"role": "user", "content": [part]}]}
    ).encode()


CASES = [
    ("nested", b'{"model":"demo-vision","input":' + b"[" * 5000 + b"]" * 5000 + b"}",
     400, "invalid_request", "input[0]"),
    ("not utf-8", b'{"model":"demo-vision","input":"\xff\xfe"}', 400, "invalid_json", None),
    ("truncated", _image("data:image/png;base64,iVBORw0KGgo")[:80], 400, "invalid_json", None),
    ("not an image", _image("data:image/png;base64,AAAA"),
     400, "image_decode_error", "input[0].content[0].image_url"),
    ("huge previous id",
     _body(input="x", previous_response_id="r" * 100_000),
     404, "previous_response_not_found", "previous_response_id"),
    ("huge item reference",
     _body(input=[{"type": "item_reference", "id": "x" * 100_000}]),
     404, "item_not_found", "input[0].id"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_hostile_responses_body_gets_a_clear_bounded_error(
    client: TestClient, body: bytes, status: int, code: str, param: str | None
) -> None:
    answer = client.post(
        "/v1/responses", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == status
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert len(answer.content) < 2_000  # a 100 KB id is quoted clipped, not echoed


def test_a_count_of_a_broken_document_is_a_messages_error(client: TestClient) -> None:
    source = {"type": "base64", "media_type": "application/pdf", "data": "!!"}
    body = {
        "model": "demo-claude",
        "messages": [{"role": "user", "content": [{"type": "document", "source": source}]}],
    }
    answer = client.post("/v1/messages/count_tokens", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "document_decode_error"
