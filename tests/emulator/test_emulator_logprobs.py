"""The emulators refuse what the real APIs refuse and return n choices and logprobs when asked."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

import pytest
from openai.types.chat import completion_create_params
from starlette.testclient import TestClient

from aperture.emulator import create_emulator_app
from aperture.emulator.openai_options import STANDARD_FIELDS

AUTH = {"authorization": "Bearer k"}
OPENAI = "/openai/v1/chat/completions"
GEMINI = "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
ASK = [{"role": "user", "content": "Say something."}]


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_emulator_app()) as test_client:
        yield test_client


def test_known_fields_are_the_sdks() -> None:
    fields = set(typing.get_type_hints(completion_create_params.CompletionCreateParamsStreaming))
    assert fields == STANDARD_FIELDS


def test_openai_refuses_an_unknown_field(client: TestClient) -> None:
    response = client.post(OPENAI, json={"model": "m", "messages": ASK, "foo": 1}, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "Unrecognized request argument supplied: foo",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_a_compatible_server_ignores_it(client: TestClient) -> None:
    body = {"model": "m", "messages": ASK, "top_k": 3}
    response = client.post("/vllm/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 0}, "n"),
        ({"n": 129}, "n"),
        ({"logprobs": "yes"}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
    ],
)
def test_openai_bounds(client: TestClient, extra: dict[str, Any], param: str) -> None:
    response = client.post(OPENAI, json={"model": "m", "messages": ASK, **extra}, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_openai_n_choices_with_logprobs(client: TestClient) -> None:
    body = {"model": "m", "messages": ASK, "n": 2, "logprobs": True, "top_logprobs": 2}
    answer = client.post(OPENAI, json=body, headers=AUTH).json()
    assert [c["index"] for c in answer["choices"]] == [0, 1]
    first = answer["choices"][0]
    tokens = first["logprobs"]["content"]
    assert "".join(t["token"] for t in tokens) == first["message"]["content"]
    assert all(len(t["top_logprobs"]) == 2 for t in tokens)
    assert answer == client.post(OPENAI, json=body, headers=AUTH).json() | {
        "created": answer["created"]
    }


@pytest.mark.parametrize(
    "config",
    [
        {"responseLogprobs": True, "logprobs": 21},
        {"responseLogprobs": True, "logprobs": -1},
        {"logprobs": 3},
        {"responseLogprobs": "yes"},
    ],
)
def test_gemini_refuses_bad_logprobs(client: TestClient, config: dict[str, Any]) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": config}
    response = client.post(GEMINI, json=body, headers={"x-goog-api-key": "k"})
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_gemini_logprobs_result(client: TestClient) -> None:
    config = {"responseLogprobs": True, "logprobs": 3}
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": config}
    answer = client.post(GEMINI, json=body, headers={"x-goog-api-key": "k"}).json()
    candidate = answer["candidates"][0]
    result = candidate["logprobsResult"]
    text = "".join(p["text"] for p in candidate["content"]["parts"])
    assert "".join(c["token"] for c in result["chosenCandidates"]) == text
    assert all(len(t["candidates"]) == 3 for t in result["topCandidates"])
