"""The Gemini adapter reading answers: responses, SSE streams and Google's error envelope.

Response fixtures are validated by the google-genai SDK's ``GenerateContentResponse`` type
first, so they are shapes Gemini really sends.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.genai import types

from aperture.errors import (
    UpstreamError,
    UpstreamQuotaError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from aperture.model import (
    ChatResponse,
    Choice,
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
from aperture.providers.gemini import GeminiProvider
from aperture.settings import ProviderSettings
from aperture.upstream import SseDecoder

PROVIDER = GeminiProvider()
TARGET = Target(ProviderSettings(name="gem", kind="gemini", api_key="k"), "gemini-2.5-flash")
USAGE = {
    "promptTokenCount": 266,
    "candidatesTokenCount": 5,
    "totalTokenCount": 291,
    "thoughtsTokenCount": 20,
    "promptTokensDetails": [
        {"modality": "TEXT", "tokenCount": 8},
        {"modality": "IMAGE", "tokenCount": 258},
    ],
}


def response(*candidates: dict[str, Any], **fields: Any) -> bytes:
    body = {"candidates": list(candidates), "modelVersion": "gemini-2.5-flash", **fields}
    types.GenerateContentResponse.model_validate_json(json.dumps(body))
    return json.dumps(body).encode()


def candidate(
    *parts: dict[str, Any], finish: str | None = "STOP", index: int = 0
) -> dict[str, Any]:
    out: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": index}
    if finish is not None:
        out["finishReason"] = finish
    return out


def feed(*chunks: bytes | dict[str, Any], crlf: bool = True) -> tuple[list[StreamEvent], Any]:
    end = b"\r\n\r\n" if crlf else b"\n\n"
    wire = b"".join(
        b"data: " + (c if isinstance(c, bytes) else json.dumps(c).encode()) + end for c in chunks
    )
    parser = PROVIDER.stream_parser(TARGET)
    events: list[StreamEvent] = []
    for event in SseDecoder().feed(wire):
        assert not parser.done, "nothing is fed after the parser says done"
        events += parser.feed(event)
    return events, parser


def error_body(code: int, status: str, message: str, *details: dict[str, Any]) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return json.dumps({"error": error}).encode()


def retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def quota_failure(quota_id: str) -> dict[str, Any]:
    violation = {"quotaMetric": "generativelanguage.googleapis.com/x", "quotaId": quota_id}
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]}


# ---------------------------------------------------------------------------------------------
# Responses


def test_text_response_with_usage() -> None:
    body = response(
        candidate(
            {"text": "A cat "}, {"text": "thinking...", "thought": True}, {"text": "on a sofa"}
        ),
        usageMetadata=USAGE,
        responseId="resp-1",
    )
    parsed = PROVIDER.parse_response(body, TARGET)
    assert parsed == ChatResponse(
        id="resp-1",
        model="gemini-2.5-flash",
        created=parsed.created,
        choices=(
            Choice(
                index=0,
                content="A cat on a sofa",
                finish_reason="stop",
                # The thought summary is not the answer: it is kept as the answer's reasoning.
                reasoning=(Thought("thinking..."),),
            ),
        ),
        usage=Usage(
            prompt_tokens=266,
            completion_tokens=25,
            image_tokens=258,
            reasoning_tokens=20,
        ),
    )
    assert parsed.created > 0


def test_function_calls_get_synthesised_ids_and_tool_calls_finish() -> None:
    body = response(
        candidate(
            {"text": "Checking."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "ping"}, "thoughtSignature": "c2lnbmF0dXJl"},
        )
    )
    choice = PROVIDER.parse_response(body, TARGET).choices[0]
    assert choice == Choice(
        index=0,
        content="Checking.",
        tool_calls=(
            ToolCall("call_0_get_weather", "get_weather", '{"city":"Paris"}'),
            ToolCall("call_1_ping", "ping", "{}"),
        ),
        finish_reason="tool_calls",
        # The signature is kept, to go back with this turn.
        reasoning=(Thought("", "c2lnbmF0dXJl"),),
    )
    only_call = response(candidate({"functionCall": {"name": "ping", "args": {}}}))
    assert PROVIDER.parse_response(only_call, TARGET).choices[0].content is None


def test_several_candidates_and_a_blocked_prompt() -> None:
    body = response(
        candidate({"text": "One"}), candidate({"text": "Two"}, finish="MAX_TOKENS", index=1)
    )
    choices = PROVIDER.parse_response(body, TARGET).choices
    assert [(c.index, c.content, c.finish_reason) for c in choices] == [
        (0, "One", "stop"),
        (1, "Two", "length"),
    ]
    blocked = response(
        promptFeedback={"blockReason": "SAFETY"}, usageMetadata={"promptTokenCount": 9}
    )
    parsed = PROVIDER.parse_response(blocked, TARGET)
    assert parsed.choices == (Choice(index=0, content=None, finish_reason="content_filter"),)
    assert parsed.usage == Usage(prompt_tokens=9)
    assert parsed.id == ""


@pytest.mark.parametrize(
    ("reason", "mapped"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "stop"),
        ("LANGUAGE", "content_filter"),
        ("OTHER", "stop"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("IMAGE_SAFETY", "content_filter"),
        ("FINISH_REASON_UNSPECIFIED", "stop"),
        ("SOMETHING_NEW", "stop"),
    ],
)
def test_finish_reasons(reason: str, mapped: str) -> None:
    body = json.dumps({"candidates": [candidate({"text": "x"}, finish=reason)]}).encode()
    assert PROVIDER.parse_response(body, TARGET).choices[0].finish_reason == mapped


def test_malformed_and_in_band_error_bodies() -> None:
    with pytest.raises(UpstreamError) as caught:
        PROVIDER.parse_response(b"<html>", TARGET)
    assert type(caught.value) is UpstreamError
    in_band = error_body(503, "UNAVAILABLE", "The model is overloaded.")
    with pytest.raises(UpstreamUnavailableError):
        PROVIDER.parse_response(in_band, TARGET)


# ---------------------------------------------------------------------------------------------
# Streams


def test_text_stream_ends_with_finish_and_the_last_usage() -> None:
    running = {"promptTokenCount": 266, "totalTokenCount": 266}
    events, parser = feed(
        json.loads(response(candidate({"text": "A cat"}, finish=None), usageMetadata=running)),
        json.loads(response(candidate({"text": " on a sofa"}), usageMetadata=USAGE)),
    )
    assert events == [
        Delta(index=0, role="assistant", content=""),
        Delta(index=0, content="A cat"),
        Delta(index=0, content=" on a sofa"),
        Finish(0, "stop"),
        UsageReport(
            Usage(prompt_tokens=266, completion_tokens=25, image_tokens=258, reasoning_tokens=20)
        ),
    ]
    assert parser.done
    assert parser.model == "gemini-2.5-flash"


def test_tool_calls_stream_whole_with_their_ids() -> None:
    events, parser = feed(
        json.loads(response(candidate({"text": "Let me check."}, finish=None))),
        json.loads(
            response(
                candidate(
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                )
            )
        ),
        crlf=False,
    )
    assert events == [
        Delta(index=0, role="assistant", content=""),
        Delta(index=0, content="Let me check."),
        Delta(
            index=0,
            tool_calls=(ToolCallDelta(0, "call_0_get_weather", "get_weather", '{"city":"Paris"}'),),
        ),
        Delta(
            index=0,
            tool_calls=(ToolCallDelta(1, "call_1_get_weather", "get_weather", '{"city":"Rome"}'),),
        ),
        Finish(0, "tool_calls"),
    ]
    assert parser.done


def test_stream_is_done_when_every_candidate_finished() -> None:
    events, parser = feed(
        json.loads(
            response(candidate({"text": "a"}), candidate({"text": "b"}, finish=None, index=1))
        )
    )
    assert Finish(0, "stop") in events
    assert not parser.done
    events = parser.feed(
        SseDecoder().feed(b"data: " + response(candidate({"text": "c"}, index=1)) + b"\n\n")[0]
    )
    assert events == [Delta(index=1, content="c"), Finish(1, "stop")]
    assert parser.done


def test_a_blocked_prompt_finishes_the_stream() -> None:
    events, parser = feed({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})
    assert events == [Delta(index=0, role="assistant", content=""), Finish(0, "content_filter")]
    assert parser.done


def test_midstream_error_raises_from_feed() -> None:
    first = json.loads(response(candidate({"text": "Saw"}, finish=None)))
    parser = PROVIDER.stream_parser(TARGET)
    decoded = SseDecoder().feed(
        b"data: " + json.dumps(first).encode() + b"\r\n\r\n"
        b"data: " + error_body(503, "UNAVAILABLE", "The model is overloaded.") + b"\r\n\r\n"
    )
    assert parser.feed(decoded[0])[1] == Delta(index=0, content="Saw")
    with pytest.raises(UpstreamUnavailableError) as caught:
        parser.feed(decoded[1])
    assert caught.value.upstream_status == 503
    assert "overloaded" in caught.value.message
    assert not parser.done
    # The status alone decides when the code is missing.
    quota = json.dumps({"error": {"message": "slow down", "status": "RESOURCE_EXHAUSTED"}})
    with pytest.raises(UpstreamRateLimitedError):
        PROVIDER.stream_parser(TARGET).feed(SseDecoder().feed(f"data: {quota}\n\n".encode())[0])


def test_stream_attributes_for_dispatch() -> None:
    assert PROVIDER.stream_framing == "sse"
    assert PROVIDER.stream_ends_with_body is True
    _, parser = feed(b"")
    assert not parser.done


# ---------------------------------------------------------------------------------------------
# Errors


def test_rate_limit_with_retry_info_becomes_retry_after() -> None:
    body = error_body(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota. Please retry in 36.2s.",
        quota_failure("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
        retry_info("36.2s"),
    )
    error = PROVIDER.parse_error(429, body, {"x-other": "1"}, TARGET)
    assert type(error) is UpstreamRateLimitedError
    assert error.headers == {"retry-after": "37"}
    assert error.upstream_status == 429 and error.provider == "gem"
    plain = PROVIDER.parse_error(
        429,
        error_body(429, "RESOURCE_EXHAUSTED", "Resource exhausted."),
        {"retry-after": "5"},
        TARGET,
    )
    assert type(plain) is UpstreamRateLimitedError
    assert plain.headers == {"retry-after": "5"}


@pytest.mark.parametrize(
    "details",
    [
        (quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier"), retry_info("20s")),
        (quota_failure("GenerateContentInputTokensPerModel"),),
    ],
)
def test_quota_exhaustion_is_told_by_the_structured_details(details: tuple[Any, ...]) -> None:
    body = error_body(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", *details)
    error = PROVIDER.parse_error(429, body, {}, TARGET)
    assert type(error) is UpstreamQuotaError
    assert not error.retryable


@pytest.mark.parametrize(
    ("status", "google", "kind"),
    [
        (400, "INVALID_ARGUMENT", UpstreamRejectedError),
        (400, "FAILED_PRECONDITION", UpstreamRejectedError),
        (404, "NOT_FOUND", UpstreamRejectedError),
        (500, "INTERNAL", UpstreamUnavailableError),
        (503, "UNAVAILABLE", UpstreamUnavailableError),
        (504, "DEADLINE_EXCEEDED", UpstreamTimeoutError),
        (499, "CANCELLED", UpstreamUnavailableError),
    ],
)
def test_status_classes(status: int, google: str, kind: type[UpstreamError]) -> None:
    error = PROVIDER.parse_error(status, error_body(status, google, "Said by Google."), {}, TARGET)
    assert type(error) is kind
    assert error.upstream_status == status
    assert "Said by Google." in error.message


def test_rejection_keeps_the_upstream_status_and_message() -> None:
    body = error_body(400, "INVALID_ARGUMENT", "Provided image is not valid.")
    error = PROVIDER.parse_error(400, body, {}, TARGET)
    assert isinstance(error, UpstreamRejectedError)
    assert error.status_code == 400
    assert error.message == "gem rejected the request: Provided image is not valid."


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, error_body(401, "UNAUTHENTICATED", "API key AIza-secret is wrong.")),
        (403, error_body(403, "PERMISSION_DENIED", "Key AIza-secret lacks access.")),
        (
            400,
            error_body(
                400,
                "INVALID_ARGUMENT",
                "API key not valid: AIza-secret.",
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
            ),
        ),
    ],
)
def test_credential_errors_never_echo_the_provider_text(status: int, body: bytes) -> None:
    error = PROVIDER.parse_error(status, body, {}, TARGET)
    assert type(error) is UpstreamError
    assert error.message == f"gem refused the gateway's credentials (HTTP {status})."
    assert "AIza" not in error.message


def test_vertex_array_and_non_json_error_bodies() -> None:
    wrapped = b"[" + error_body(503, "UNAVAILABLE", "Overloaded.") + b"]"
    assert type(PROVIDER.parse_error(503, wrapped, {}, TARGET)) is UpstreamUnavailableError
    html = PROVIDER.parse_error(502, b"<html>Bad Gateway</html>", {}, TARGET)
    assert type(html) is UpstreamUnavailableError
    assert "<html>Bad Gateway</html>" in html.message
    odd = PROVIDER.parse_error(302, b"", {}, TARGET)
    assert type(odd) is UpstreamError
