"""What Bedrock sends back, made canonical: Converse responses, ConverseStream frames, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aperture.errors import (
    UpstreamError,
    UpstreamQuotaError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from aperture.model import (
    Delta,
    Finish,
    StreamEvent,
    Target,
    Thought,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from aperture.providers.bedrock import AwsCredentialSource, BedrockProvider, BedrockStreamParser
from aperture.settings import ProviderSettings
from aperture.upstream.eventstream import EventStreamDecoder, Frame, encode_frame

PROVIDER = BedrockProvider(AwsCredentialSource())
TARGET = Target(ProviderSettings(name="bedrock", kind="bedrock"), "amazon.nova-pro-v1:0")
SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"


def response(content: list[dict[str, Any]], stop: str = "end_turn", **usage: int) -> bytes:
    counts = {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17, **usage}
    body = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": counts,
        "metrics": {"latencyMs": 321},
    }
    return json.dumps(body).encode()


def event(kind: str, payload: dict[str, Any]) -> Frame:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    # Bedrock pads payloads with a "p" field: unknown fields must be ignored.
    return Frame(headers, json.dumps({**payload, "p": "abcdef"}).encode())


def exception(kind: str, message: str = "It broke.") -> Frame:
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return Frame(headers, json.dumps({"message": message}).encode())


def feed(*frames: Frame) -> tuple[list[StreamEvent], BedrockStreamParser]:
    """Feed the frames through the real codec, as dispatch will: encoded, then decoded."""
    wire = b"".join(encode_frame(f.headers, f.payload) for f in frames)
    parser = PROVIDER.stream_parser(TARGET)
    events: list[StreamEvent] = []
    for decoded in EventStreamDecoder().feed(wire):
        assert not parser.done
        events += parser.feed(decoded)
    return events, parser


START = event("messageStart", {"role": "assistant"})
METADATA = event(
    "metadata",
    {
        "usage": {"inputTokens": 30, "outputTokens": 4, "totalTokens": 34},
        "metrics": {"latencyMs": 9},
    },
)


# ---------------------------------------------------------------------------------------------
# Converse responses


def test_a_text_response() -> None:
    parsed = PROVIDER.parse_response(response([{"text": "Hello "}, {"text": "there."}]), TARGET)
    choice = parsed.choices[0]
    assert choice.content == "Hello there."
    assert choice.tool_calls is None
    assert choice.finish_reason == "stop"
    assert parsed.model == "amazon.nova-pro-v1:0"
    assert parsed.id.startswith("bedrock-")
    assert parsed.usage == Usage(prompt_tokens=12, completion_tokens=5)


def test_a_tool_use_response() -> None:
    content: list[dict[str, Any]] = [
        {"text": "Checking."},
        {"toolUse": {"toolUseId": "tooluse_1", "name": "weather", "input": {"city": "Oslo"}}},
        {"toolUse": {"toolUseId": "tooluse_2", "name": "ping", "input": {}}},
    ]
    choice = PROVIDER.parse_response(response(content, "tool_use"), TARGET).choices[0]
    assert choice.content == "Checking."
    assert choice.tool_calls == (
        ToolCall("tooluse_1", "weather", '{"city":"Oslo"}'),
        ToolCall("tooluse_2", "ping", "{}"),
    )
    assert choice.finish_reason == "tool_calls"
    only_tools = PROVIDER.parse_response(response(content[1:], "tool_use"), TARGET)
    assert only_tools.choices[0].content is None


@pytest.mark.parametrize(
    ("stop", "reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_model_output", "stop"),
        ("a_future_reason", "stop"),
    ],
)
def test_stop_reasons(stop: str, reason: str) -> None:
    parsed = PROVIDER.parse_response(response([{"text": "x"}], stop), TARGET)
    assert parsed.choices[0].finish_reason == reason


def test_cache_tokens_add_to_the_prompt() -> None:
    # inputTokens counts only what was neither read from nor written to the prompt cache.
    body = response([{"text": "x"}], cacheReadInputTokens=100, cacheWriteInputTokens=20)
    usage = PROVIDER.parse_response(body, TARGET).usage
    assert usage == Usage(
        prompt_tokens=132, completion_tokens=5, cached_tokens=100, cache_creation_tokens=20
    )


def test_reasoning_blocks_are_skipped() -> None:
    content: list[dict[str, Any]] = [
        {"reasoningContent": {"reasoningText": {"text": "hmm"}}},
        {"text": "42"},
    ]
    assert PROVIDER.parse_response(response(content), TARGET).choices[0].content == "42"


def test_a_malformed_body_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="not valid JSON"):
        PROVIDER.parse_response(b"<html>", TARGET)


# ---------------------------------------------------------------------------------------------
# ConverseStream


def test_a_text_stream() -> None:
    events, parser = feed(
        START,
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("messageStop", {"stopReason": "max_tokens"}),
        METADATA,
    )
    assert events == [
        Delta(index=0, role="assistant", content=""),
        Delta(index=0, content="Hel"),
        Delta(index=0, content="lo"),
        Finish(0, "length"),
        UsageReport(Usage(prompt_tokens=30, completion_tokens=4)),
    ]
    assert parser.done


def test_a_tool_call_stream_after_text() -> None:
    events, parser = feed(
        START,
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Let me look."}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event(
            "contentBlockStart",
            {
                "contentBlockIndex": 1,
                "start": {"toolUse": {"toolUseId": "tu_1", "name": "weather"}},
            },
        ),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": ""}}}),
        event(
            "contentBlockDelta",
            {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city"'}}},
        ),
        event(
            "contentBlockDelta",
            {"contentBlockIndex": 1, "delta": {"toolUse": {"input": ':"Oslo"}'}}},
        ),
        event("contentBlockStop", {"contentBlockIndex": 1}),
        event(
            "contentBlockStart",
            {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tu_2", "name": "ping"}}},
        ),
        event("contentBlockStop", {"contentBlockIndex": 2}),
        event("messageStop", {"stopReason": "tool_use"}),
        METADATA,
    )
    assert events == [
        Delta(index=0, role="assistant", content=""),
        Delta(index=0, content="Let me look."),
        Delta(index=0, tool_calls=(ToolCallDelta(0, "tu_1", "weather", ""),)),
        Delta(index=0, tool_calls=(ToolCallDelta(0, arguments='{"city"'),)),
        Delta(index=0, tool_calls=(ToolCallDelta(0, arguments=':"Oslo"}'),)),
        Delta(index=0, tool_calls=(ToolCallDelta(1, "tu_2", "ping", ""),)),
        # A tool called without input streams no JSON: clients still parse "{}".
        Delta(index=0, tool_calls=(ToolCallDelta(1, arguments="{}"),)),
        Finish(0, "tool_calls"),
        UsageReport(Usage(prompt_tokens=30, completion_tokens=4)),
    ]
    assert parser.done


def test_reasoning_deltas_are_thoughts_and_unknown_events_carry_nothing() -> None:
    def reasoning(delta: dict[str, str]) -> Frame:
        body = {"contentBlockIndex": 0, "delta": {"reasoningContent": delta}}
        return event("contentBlockDelta", body)

    events, parser = feed(
        START,
        reasoning({"text": "thinking"}),
        reasoning({"signature": "c2ln"}),
        reasoning({"redactedContent": "b3BhcXVl"}),
        event("someFutureEvent", {"x": 1}),
        event("messageStop", {"stopReason": "end_turn"}),
    )
    assert events == [
        Delta(index=0, role="assistant", content=""),
        Delta(index=0, thought=Thought("thinking")),
        Delta(index=0, thought=Thought(signature="c2ln")),
        Delta(index=0, thought=Thought(redacted="b3BhcXVl")),
        Finish(0, "stop"),
    ]
    assert not parser.done, "done only after metadata, which carries the usage"


def test_metadata_with_cache_usage() -> None:
    usage = {"inputTokens": 3, "outputTokens": 2, "totalTokens": 55, "cacheReadInputTokens": 50}
    events, parser = feed(event("metadata", {"usage": usage, "metrics": {"latencyMs": 1}}))
    assert events == [UsageReport(Usage(prompt_tokens=53, completion_tokens=2, cached_tokens=50))]
    assert parser.done


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [
        ("throttlingException", UpstreamRateLimitedError, 429),
        ("modelStreamErrorException", UpstreamUnavailableError, 503),
        ("internalServerException", UpstreamUnavailableError, 503),
        ("serviceUnavailableException", UpstreamUnavailableError, 503),
        ("validationException", UpstreamRejectedError, 400),
        ("unknownFutureException", UpstreamUnavailableError, 503),
    ],
)
def test_exception_frames_raise_the_mapped_error_mid_stream(
    kind: str, error: type[UpstreamError], status: int
) -> None:
    parser = PROVIDER.stream_parser(TARGET)
    delta = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
    assert parser.feed(START) and parser.feed(delta)
    with pytest.raises(error) as caught:
        parser.feed(exception(kind, "Something happened."))
    assert type(caught.value) is error
    assert caught.value.status_code == status
    assert "Something happened." in caught.value.message
    assert caught.value.provider == "bedrock"


def test_error_frames_raise_by_error_code() -> None:
    frame = Frame(
        {":message-type": "error", ":error-code": "ThrottlingException", ":error-message": "Slow"},
        b"",
    )
    with pytest.raises(UpstreamRateLimitedError, match="Slow"):
        PROVIDER.stream_parser(TARGET).feed(frame)


def test_a_malformed_event_payload_is_an_upstream_error() -> None:
    frame = Frame({":event-type": "contentBlockDelta", ":message-type": "event"}, b"{not json")
    with pytest.raises(UpstreamError, match="not valid JSON"):
        PROVIDER.stream_parser(TARGET).feed(frame)


# ---------------------------------------------------------------------------------------------
# HTTP errors


def error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


@pytest.mark.parametrize(
    ("status", "name", "error", "client_status"),
    [
        (429, "ThrottlingException", UpstreamRateLimitedError, 429),
        (400, "ServiceQuotaExceededException", UpstreamQuotaError, 429),
        (400, "ValidationException", UpstreamRejectedError, 400),
        (404, "ResourceNotFoundException", UpstreamRejectedError, 404),
        (408, "ModelTimeoutException", UpstreamTimeoutError, 504),
        (503, "ServiceUnavailableException", UpstreamUnavailableError, 503),
        (500, "InternalServerException", UpstreamUnavailableError, 503),
        (429, "ModelNotReadyException", UpstreamUnavailableError, 503),
        (424, "ModelErrorException", UpstreamUnavailableError, 503),
        (403, "AccessDeniedException", UpstreamError, 502),
        (403, "UnrecognizedClientException", UpstreamError, 502),
        (403, "InvalidSignatureException", UpstreamError, 502),
        (403, "ExpiredTokenException", UpstreamError, 502),
    ],
)
def test_errors_are_classified_by_exception_name(
    status: int, name: str, error: type[UpstreamError], client_status: int
) -> None:
    headers = {"x-amzn-ErrorType": name + SUFFIX, "x-amzn-RequestId": "abc"}
    parsed = PROVIDER.parse_error(status, error_body("Details here."), headers, TARGET)
    assert type(parsed) is error
    assert parsed.status_code == client_status
    assert parsed.upstream_status == status
    if error is UpstreamError:
        # The gateway's own credentials were refused: never echo what AWS said about them.
        assert "Details here." not in parsed.message
        assert "credentials" in parsed.message
    else:
        assert "Details here." in parsed.message


def test_throttling_keeps_retry_after() -> None:
    headers = {"x-amzn-errortype": "ThrottlingException", "Retry-After": "3", "x-other": "1"}
    parsed = PROVIDER.parse_error(429, error_body("Too many requests."), headers, TARGET)
    assert isinstance(parsed, UpstreamRateLimitedError)
    assert parsed.headers == {"retry-after": "3"}
    assert parsed.retryable


def test_quota_is_never_retried() -> None:
    headers = {"x-amzn-errortype": "ServiceQuotaExceededException"}
    parsed = PROVIDER.parse_error(400, error_body("Daily tokens."), headers, TARGET)
    assert isinstance(parsed, UpstreamQuotaError)
    assert not parsed.retryable


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (b'{"__type":"com.amazon.coral.validate#ValidationException","message":"Bad."}', "Bad."),
        (b'{"code":"ValidationException","Message":"Bad."}', "Bad."),
    ],
)
def test_the_exception_name_can_come_from_the_body(body: bytes, name: str) -> None:
    parsed = PROVIDER.parse_error(400, body, {}, TARGET)
    assert type(parsed) is UpstreamRejectedError
    assert name in parsed.message


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, UpstreamRateLimitedError),
        (401, UpstreamError),
        (504, UpstreamTimeoutError),
        (502, UpstreamUnavailableError),
        (418, UpstreamRejectedError),
    ],
)
@pytest.mark.parametrize("name", [None, "SomeFutureException"])
def test_without_a_known_name_the_status_decides(
    status: int, error: type[UpstreamError], name: str | None
) -> None:
    headers = {} if name is None else {"x-amzn-errortype": name}
    parsed = PROVIDER.parse_error(status, b"<html>gateway</html>", headers, TARGET)
    assert type(parsed) is error
