"""The adapter against the emulator, in-process: what it builds is accepted and what comes back
parses into the answer the emulator meant (text, tools, JSON mode, streams, scripted faults)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from aperture.emulator import anthropic as emulator
from aperture.errors import (
    UpstreamError,
    UpstreamQuotaError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from aperture.model import (
    ChatRequest,
    ChatResponse,
    Delta,
    Finish,
    Image,
    InlineImage,
    Message,
    ResponseFormat,
    StreamEvent,
    Target,
    Text,
    Tool,
    ToolCall,
    UsageReport,
)
from aperture.providers.anthropic import AnthropicProvider
from aperture.settings import ProviderSettings
from aperture.upstream import SseDecoder
from tests.sample_images import jpeg

PROVIDER = AnthropicProvider()
JPEG = jpeg(64, 48)
EXPECTED = (
    "Saw 2 images: #1 image/jpeg 64x48 detail=auto, #2 url image from example.com "
    'detail=auto. Asked: "What is this?" System: "Be brief."'
)


@pytest.fixture
def http() -> Iterator[TestClient]:
    app = Starlette(routes=[Mount("/anthropic", routes=emulator.routes())])
    with TestClient(app) as client:
        yield client


def target(**headers: str) -> Target:
    settings = ProviderSettings(
        name="emu",
        kind="anthropic",
        base_url="http://testserver/anthropic",
        api_key="k",
        headers=headers,
    )
    return Target(settings, "emulator-vision")


def inline_jpeg() -> Image:
    prefix = "data:image/jpeg;base64,"
    values: dict[str, Any] = {
        "mime": "image/jpeg",
        "width": 64,
        "height": 48,
        "size_bytes": len(JPEG),
        "frames": 1,
        "payload_offset": len(prefix),
        "sha256": "0" * 64,
    }
    fields = InlineImage.__struct_fields__
    info = InlineImage(**{k: v for k, v in values.items() if k in fields})
    return Image(prefix + base64.b64encode(JPEG).decode(), inline=info)


def vision(**fields: Any) -> ChatRequest:
    messages = (
        Message("system", "Be brief."),
        Message(
            "user",
            (Text("What is this?"), inline_jpeg(), Image("https://example.com/a.png", "low")),
        ),
    )
    return ChatRequest(model="m", messages=messages, **fields)


def send(http: TestClient, chat: ChatRequest, tgt: Target) -> Any:
    built = PROVIDER.build_request(chat, tgt)
    return http.post(built.url, content=built.body, headers=dict(built.headers))


def complete(http: TestClient, chat: ChatRequest, tgt: Target | None = None) -> ChatResponse:
    tgt = tgt or target()
    response = send(http, chat, tgt)
    assert response.status_code == 200, response.text
    anthropic.types.Message.model_validate(response.json())
    return PROVIDER.parse_response(response.content, tgt)


def stream(http: TestClient, chat: ChatRequest, tgt: Target | None = None) -> list[StreamEvent]:
    tgt = tgt or target()
    response = send(http, chat, tgt)
    assert response.status_code == 200, response.text
    parser = PROVIDER.stream_parser(tgt)
    events: list[StreamEvent] = []
    for event in SseDecoder().feed(response.content):
        events += parser.feed(event)
    assert parser.done
    return events


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.content or "" for e in events if isinstance(e, Delta))


def test_vision_completion(http: TestClient) -> None:
    response = complete(http, vision())
    (choice,) = response.choices
    assert choice.content == EXPECTED
    assert choice.finish_reason == "stop"
    assert response.model == "emulator-vision"
    assert response.id.startswith("msg_")
    # Text: system + question = 22 chars -> 6; jpeg 64x48 -> 3*2 patches; url -> 85.
    assert response.usage is not None
    assert response.usage.prompt_tokens == 6 + 6 + 85
    assert response.usage.completion_tokens == len(EXPECTED.split())


def test_vision_stream_matches_the_completion(http: TestClient) -> None:
    events = stream(http, vision(stream=True))
    assert events[0] == Delta(index=0, role="assistant", content="")
    assert text_of(events) == EXPECTED
    assert [e for e in events if isinstance(e, Finish)] == [Finish(0, "stop")]
    usage = events[-1]
    assert isinstance(usage, UsageReport)
    assert usage.usage.prompt_tokens == 97
    assert usage.usage.completion_tokens == len(EXPECTED.split())


def test_stop_and_max_tokens(http: TestClient) -> None:
    stopped = complete(http, vision(stop=(" Asked",)))
    assert stopped.choices[0].content == EXPECTED.split(" Asked")[0]
    assert stopped.choices[0].finish_reason == "stop"
    cut = complete(http, vision(max_tokens=3))
    assert cut.choices[0].content == "Saw 2 images:"
    assert cut.choices[0].finish_reason == "length"


def test_forced_tool_call_completion_and_stream(http: TestClient) -> None:
    tools = (Tool("echo", "Echo.", {"type": "object", "properties": {"text": {"type": "string"}}}),)
    response = complete(http, vision(tools=tools, tool_choice="required"))
    (choice,) = response.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.tool_calls is not None
    (call,) = choice.tool_calls
    assert (call.name, call.arguments) == ("echo", '{"text":"What is this?"}')
    events = stream(http, vision(tools=tools, tool_choice="required", stream=True))
    deltas = [c for e in events if isinstance(e, Delta) and e.tool_calls for c in e.tool_calls]
    assert deltas[0].id == call.id
    assert deltas[0].name == "echo"
    assert {d.index for d in deltas} == {0}
    assert "".join(d.arguments or "" for d in deltas) == call.arguments
    assert Finish(0, "tool_calls") in events


def test_a_whole_tool_conversation_is_accepted(http: TestClient) -> None:
    chat = ChatRequest(
        model="m",
        messages=(
            Message("user", "Weather in Paris and Rome?"),
            Message(
                "assistant",
                "Checking.",
                tool_calls=(
                    ToolCall("toolu_1", "weather", '{"city":"Paris"}'),
                    ToolCall("toolu_2", "weather", '{"city":"Rome"}'),
                ),
            ),
            Message("tool", "18C", tool_call_id="toolu_1"),
            Message("tool", "21C", tool_call_id="toolu_2"),
            Message("user", "Thanks, which is warmer?"),
        ),
        tools=(Tool("weather", None, {"type": "object"}),),
    )
    response = complete(http, chat)
    assert response.choices[0].content == 'Saw no images. Asked: "Thanks, which is warmer?"'


def test_json_mode_is_obeyed(http: TestClient) -> None:
    response = complete(http, vision(response_format=ResponseFormat("json_object")))
    content = response.choices[0].content
    assert content is not None
    assert json.loads(content) == {"images": 2, "asked": "What is this?"}


@pytest.mark.parametrize(
    ("fault", "expected", "status"),
    [
        ("status=429", UpstreamRateLimitedError, 429),
        ("status=529", UpstreamUnavailableError, 529),
        ("status=500", UpstreamUnavailableError, 500),
        ("quota", UpstreamQuotaError, 402),
        ("status=400", UpstreamRejectedError, 400),
        ("status=401", UpstreamError, 401),
    ],
)
def test_scripted_faults_map_to_gateway_errors(
    http: TestClient, fault: str, expected: type[UpstreamError], status: int
) -> None:
    tgt = target(**{"x-emulator-fault": fault})
    response = send(http, vision(), tgt)
    assert response.status_code == status
    error = PROVIDER.parse_error(status, response.content, dict(response.headers), tgt)
    assert type(error) is expected
    if expected is UpstreamRateLimitedError:
        assert error.headers == {"retry-after": "1"}


def test_emulator_rejections_arrive_as_rejected(http: TestClient) -> None:
    chat = vision(temperature=1.5)  # OpenAI allows up to 2, Anthropic only 1
    response = send(http, chat, target())
    assert response.status_code == 400
    error = PROVIDER.parse_error(400, response.content, dict(response.headers), target())
    assert isinstance(error, UpstreamRejectedError)
    assert "temperature: Input should be less than or equal to 1" in error.message


def test_midstream_fault_raises_after_two_deltas(http: TestClient) -> None:
    tgt = target(**{"x-emulator-fault": "midstream"})
    response = send(http, vision(stream=True), tgt)
    assert response.status_code == 200
    parser = PROVIDER.stream_parser(tgt)
    events: list[StreamEvent] = []

    def drain() -> None:
        for event in SseDecoder().feed(response.content):
            events.extend(parser.feed(event))

    with pytest.raises(UpstreamUnavailableError) as caught:
        drain()
    assert caught.value.upstream_status == 529
    assert text_of(events) == "Saw 2"
    assert not parser.done
