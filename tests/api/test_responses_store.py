"""``previous_response_id`` and ``store``: Responses answers kept in the gateway's database,
continued on any model, across a restart, by their own tenant only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import openai
import pytest

from aperture.app import create_app, create_apps
from aperture.emulator.anthropic_thinking import signature_for
from aperture.settings import AuthSettings, Settings
from aperture.settings.schema import StorageSettings
from tests import sample_images

# Fixtures are found by name, so importing them is how this module gets them.
from tests.contract.services import (  # noqa: F401
    postgres_server,
    postgres_session_url,
    postgres_url,
)
from tests.servers import serve, serve_together
from tests.upstreams import Recorder

JPEG_URI = sample_images.data_uri(sample_images.jpeg(64, 48), "image/jpeg")


def ask(text: str, *images: str) -> list[Any]:
    content: list[dict[str, Any]] = [{"type": "input_text", "text": text}]
    content += [{"type": "input_image", "image_url": url} for url in images]
    return [{"role": "user", "content": content}]


def sdk(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def assert_not_found(exc: openai.NotFoundError, param: str = "previous_response_id") -> None:
    error = exc.response.json()["error"]
    assert error["code"] == "previous_response_not_found"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_a_conversation_with_an_image_continues_on_another_model(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model="demo-vision", instructions="Be brief.", input=ask("Look.", JPEG_URI)
    )
    assert first.output_text.startswith("Saw 1 image: #1 image/jpeg 64x48")
    # Anthropic's wire now: the stored image goes again, through intake for the new target.
    second = client.responses.create(
        model="claude-vision", previous_response_id=first.id, input="And again?"
    )
    assert second.id != first.id and second.id.startswith("resp_")
    assert second.output_text.startswith("Saw 1 image: #1 image/jpeg 64x48")
    # And a streamed turn continues the chain, on Gemini's wire.
    with client.responses.stream(
        model="gemini-vision", previous_response_id=second.id, input="Once more."
    ) as stream:
        third = stream.get_final_response()
    assert third.output_text.startswith("Saw 1 image")
    fourth = client.responses.create(
        model="demo-vision", previous_response_id=third.id, input="Last."
    )
    assert fourth.output_text.startswith("Saw 1 image")


def test_the_upstream_gets_the_whole_conversation_but_not_old_instructions(
    client: openai.OpenAI, recorder: tuple[Recorder, str]
) -> None:
    first = client.responses.create(
        model="demo-vision", instructions="Old rules.", input="My name is Ada."
    )
    client.responses.create(
        model="recorded-vision",
        instructions="New rules.",
        previous_response_id=first.id,
        input="What is my name?",
    )
    sent = json.loads(recorder[0].bodies[-1])
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", "New rules."),
        ("user", "My name is Ada."),
        ("assistant", first.output_text),
        ("user", "What is my name?"),
    ]


def test_a_tool_call_continues_with_its_output(
    client: openai.OpenAI, recorder: tuple[Recorder, str]
) -> None:
    tools: list[Any] = [{"type": "function", "name": "describe", "parameters": {"type": "object"}}]
    first = client.responses.create(
        model="demo-vision", input="Use the tool.", tools=tools, tool_choice="required"
    )
    call = next(item for item in first.output if item.type == "function_call")
    client.responses.create(
        model="recorded-vision",
        previous_response_id=first.id,
        tools=tools,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "done"}],
    )
    sent = json.loads(recorder[0].bodies[-1])["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.call_id
    assert sent[2] == {"role": "tool", "content": "done", "tool_call_id": call.call_id}


@pytest.mark.parametrize("stream", [False, True])
def test_a_continued_turn_carries_the_signed_thoughts_back(
    client: openai.OpenAI, recorder: tuple[Recorder, str], stream: bool
) -> None:
    ask_first = {"model": "claude-recorded", "input": "Why?", "reasoning": {"effort": "low"}}
    if stream:
        with client.responses.stream(**ask_first) as streamed:  # type: ignore[arg-type]
            first = streamed.get_final_response()
    else:
        first = client.responses.create(**ask_first)  # type: ignore[arg-type]
    reasoning = first.output[0]
    assert reasoning.type == "reasoning"
    summary = reasoning.summary[0].text
    client.responses.create(
        model="claude-recorded",
        reasoning={"effort": "low"},
        previous_response_id=first.id,
        input="And at sunset?",
    )
    turn = json.loads(recorder[0].bodies[-1])["messages"][1]["content"]
    # Anthropic wants its signed thinking back unaltered with the turn it led to.
    assert turn[0] == {"type": "thinking", "thinking": summary, "signature": signature_for(summary)}


def test_unknown_and_unstored_responses_are_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(
            model="demo-vision", previous_response_id="resp_nothing", input="hi"
        )
    assert_not_found(caught.value)
    unstored = client.responses.create(model="demo-vision", input="hi", store=False)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="demo-vision", previous_response_id=unstored.id, input="x")
    assert_not_found(caught.value)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    # A turn sent with store: false may still continue a kept one; it is not kept itself.
    kept = client.responses.create(model="demo-vision", input="Keep me.")
    branch = client.responses.create(
        model="demo-vision", previous_response_id=kept.id, input="Not me.", store=False
    )
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(branch.id)


def test_a_kept_response_is_read_back_and_deleted(client: openai.OpenAI) -> None:
    made = client.responses.create(model="demo-vision", input=ask("Look.", JPEG_URI))
    read = client.responses.retrieve(made.id)
    assert (read.id, read.output_text, read.model) == (made.id, made.output_text, "demo-vision")
    with client.responses.stream(model="demo-vision", input="Say hi.") as stream:
        streamed = stream.get_final_response()
    assert client.responses.retrieve(streamed.id).output_text == streamed.output_text
    client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve(made.id)
    assert_not_found(caught.value, "response_id")
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="demo-vision", previous_response_id=made.id, input="x")


def test_a_failed_request_keeps_nothing(client: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.APIStatusError):
        client.responses.create(model="failing-400", input="hi")
    body = {"model": "failing-midstream", "input": "hi", "stream": True}
    with http.stream("POST", "/v1/responses", json=body) as response:
        lines = list(response.iter_lines())
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert events[-1]["type"] == "response.failed"
    failed_id = events[-1]["response"]["id"]
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(failed_id)


@pytest.fixture(scope="module")
def tenants_gateway(
    gateway_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A locked gateway, and keys of two tenants (two keys for the first)."""
    state = tmp_path_factory.mktemp("tenants")
    settings = msgspec.structs.replace(
        gateway_settings,
        auth=AuthSettings(master_key="sk-master", key_pepper="pepper"),
        storage=StorageSettings(database=f"sqlite:///{state}/db.sqlite", spool_dir=str(state)),
    )
    with serve_together(*create_apps(settings)) as (public, admin):
        keys = {"url": public}
        for name, tenant in [("a1", "acme"), ("a2", "acme"), ("b1", "globex"), ("solo", None)]:
            made = httpx.post(
                f"{admin}/v1/admin/keys",
                json={"name": name, "tenant": tenant},
                headers={"authorization": "Bearer sk-master"},
            )
            assert made.status_code in (200, 201), made.text
            keys[name] = made.json()["key"]
        yield keys


def test_a_key_continues_only_its_own_tenants_responses(tenants_gateway: dict[str, str]) -> None:
    url = tenants_gateway["url"]
    with sdk(url, tenants_gateway["a1"]) as a1, sdk(url, tenants_gateway["a2"]) as a2:
        made = a1.responses.create(model="demo-vision", input="Acme's secret.")
        # Another key of the same tenant may continue it and read it.
        a2.responses.create(model="demo-vision", previous_response_id=made.id, input="ok")
        assert a2.responses.retrieve(made.id).id == made.id
    for other in ("b1", "solo"):
        with sdk(url, tenants_gateway[other]) as stranger:
            with pytest.raises(openai.NotFoundError) as caught:
                stranger.responses.create(
                    model="demo-vision", previous_response_id=made.id, input="peek"
                )
            assert_not_found(caught.value)
            with pytest.raises(openai.NotFoundError):
                stranger.responses.retrieve(made.id)
            with pytest.raises(openai.NotFoundError):
                stranger.responses.delete(made.id)
    with sdk(url, "sk-master") as master, pytest.raises(openai.NotFoundError):
        master.responses.retrieve(made.id)


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'restart.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_a_conversation_continues_across_a_restart(
    gateway_settings: Settings, shared_database: str, tmp_path: Path
) -> None:
    settings = msgspec.structs.replace(
        gateway_settings,
        storage=StorageSettings(database=shared_database, spool_dir=str(tmp_path / "spool")),
    )
    with serve(create_app(settings)) as url, sdk(url) as client:
        first = client.responses.create(model="demo-vision", input=ask("Look.", JPEG_URI))
    # A new gateway process on the same database: nothing of the first one's memory is left.
    with serve(create_app(settings)) as url, sdk(url) as client:
        second = client.responses.create(
            model="claude-vision", previous_response_id=first.id, input="And again?"
        )
        assert second.output_text.startswith("Saw 1 image: #1 image/jpeg 64x48")
        assert client.responses.retrieve(first.id).output_text == first.output_text
