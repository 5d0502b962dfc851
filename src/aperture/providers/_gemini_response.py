"""Reading what Gemini answers: responses, stream chunks, usage, stop reasons and errors.

Error classification uses Google's structured fields, never message text:

- ``status`` (``RESOURCE_EXHAUSTED``, ``UNAVAILABLE``...) and ``code`` (the HTTP status
  inside the body) stand in for the HTTP status when an error arrives inside a 200 stream.
- ``RESOURCE_EXHAUSTED`` is a quota error (``UpstreamQuotaError``, not retried) when its
  ``google.rpc.QuotaFailure`` names a per-day quota (``quotaId`` ``...PerDay...``), or when
  it carries a ``QuotaFailure`` but no ``google.rpc.RetryInfo``; otherwise it is a rate
  limit (``UpstreamRateLimitedError``), with ``RetryInfo.retryDelay`` as ``Retry-After``.
  Google attaches a ``QuotaFailure`` to per-minute limits too, so its mere presence is not
  enough to call the quota spent.
- ``google.rpc.ErrorInfo`` reason ``BILLING_DISABLED`` (the project's billing is off) is a
  quota error too, whatever its status.
- Credential problems never echo Google's text: 401/403, ``UNAUTHENTICATED``,
  ``PERMISSION_DENIED``, and the 400 Google answers for a bad key (``google.rpc.ErrorInfo``
  reason ``API_KEY_INVALID`` and its siblings).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec

from aperture.errors import UpstreamError
from aperture.model import (
    Choice,
    FinishReason,
    GeneratedImage,
    Target,
    Thought,
    TokenLogprob,
    ToolCall,
    TopLogprob,
    Usage,
    token_bytes,
)
from aperture.providers._gemini_request import tool_call_id
from aperture.providers._status import ErrorClass, body_text, classify_status, malformed

__all__ = [
    "GeminiCandidate",
    "GeminiError",
    "GeminiFunctionCall",
    "GeminiResponse",
    "classify",
    "decode_error",
    "decode_response",
    "finish_reason",
    "to_choice",
    "to_usage",
]

_QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
# google.rpc.ErrorInfo reasons that mean the gateway's own key or project is the problem.
_CREDENTIAL_REASONS = frozenset({"SERVICE_DISABLED", "CONSUMER_INVALID", "ACCESS_TOKEN_EXPIRED"})
# google.api.ErrorReason values meaning the project cannot pay (a 403 PERMISSION_DENIED):
# a quota error, never retried, rather than a credentials problem.
_BILLING_REASONS = frozenset({"BILLING_DISABLED"})

_FINISH: Mapping[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "stop",
    "LANGUAGE": "content_filter",
    "OTHER": "stop",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "MALFORMED_FUNCTION_CALL": "stop",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "FINISH_REASON_UNSPECIFIED": "stop",
}

# google.rpc.Code -> the HTTP status Google maps it to (cloud.google.com/apis/design/errors).
_STATUS_HTTP: Mapping[str, int] = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ABORTED": 409,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "DATA_LOSS": 500,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "NOT_IMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


class _In(msgspec.Struct, kw_only=True, rename="camel"):
    pass


class GeminiFunctionCall(_In, kw_only=True):
    name: str = ""
    args: dict[str, Any] | None = None


class _Blob(_In, kw_only=True):
    mime_type: str = ""
    data: str = ""


class _Part(_In, kw_only=True):
    text: str | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    function_call: GeminiFunctionCall | None = None
    inline_data: _Blob | None = None


class _Content(_In, kw_only=True):
    role: str | None = None
    parts: list[_Part] = []


class _LogprobCandidate(_In, kw_only=True):
    token: str = ""
    log_probability: float = 0.0


class _TopCandidates(_In, kw_only=True):
    candidates: list[_LogprobCandidate] = []


class _LogprobsResult(_In, kw_only=True):
    """``logprobsResult``: the chosen token and the top ones at each step, side by side."""

    chosen_candidates: list[_LogprobCandidate] = []
    top_candidates: list[_TopCandidates] = []


class GeminiCandidate(_In, kw_only=True):
    index: int = 0
    content: _Content | None = None
    finish_reason: str | None = None
    logprobs_result: _LogprobsResult | None = None

    def logprobs(self) -> tuple[TokenLogprob, ...] | None:
        """The chosen tokens with their top alternatives, when asked for (``responseLogprobs``)."""
        result = self.logprobs_result
        if result is None:
            return None
        tops = result.top_candidates
        return tuple(
            TokenLogprob(
                c.token,
                c.log_probability,
                token_bytes(c.token),
                tuple(
                    TopLogprob(t.token, t.log_probability, token_bytes(t.token))
                    for t in (tops[i].candidates if i < len(tops) else ())
                ),
            )
            for i, c in enumerate(result.chosen_candidates)
        )

    def texts(self) -> list[str]:
        """The answer's text pieces; thought summaries (``thought: true``) are not the answer."""
        parts = self.content.parts if self.content is not None else []
        return [p.text for p in parts if p.text and not p.thought]

    def images(self) -> list[GeneratedImage]:
        """The images the model made (``inlineData`` image parts); the interim images of an
        image model's thinking (``thought: true``) are not the answer."""
        parts = self.content.parts if self.content is not None else []
        return [
            GeneratedImage(p.inline_data.mime_type, p.inline_data.data)
            for p in parts
            if p.inline_data is not None
            and p.inline_data.mime_type.startswith("image/")
            and p.inline_data.data
            and not p.thought
        ]

    def thought(self) -> Thought | None:
        """The thought summaries' text and the answer's signature, as one thought."""
        parts = self.content.parts if self.content is not None else []
        texts = [p.text for p in parts if p.text and p.thought]
        signature = next((p.thought_signature for p in parts if p.thought_signature), None)
        if not texts and signature is None:
            return None
        return Thought("".join(texts), signature)

    def calls(self) -> list[GeminiFunctionCall]:
        parts = self.content.parts if self.content is not None else []
        return [p.function_call for p in parts if p.function_call is not None]


class _ModalityCount(_In, kw_only=True):
    modality: str = ""
    token_count: int = 0


class _Usage(_In, kw_only=True):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    thoughts_token_count: int | None = None
    cached_content_token_count: int | None = None
    tool_use_prompt_token_count: int | None = None
    prompt_tokens_details: list[_ModalityCount] | None = None
    candidates_tokens_details: list[_ModalityCount] | None = None


class _PromptFeedback(_In, kw_only=True):
    block_reason: str | None = None


class GeminiError(_In, kw_only=True):
    code: int | None = None
    message: str | None = None
    status: str | None = None
    details: list[dict[str, Any]] | None = None


class GeminiResponse(_In, kw_only=True):
    candidates: list[GeminiCandidate] = []
    prompt_feedback: _PromptFeedback | None = None
    usage_metadata: _Usage | None = None
    model_version: str | None = None
    response_id: str | None = None
    error: GeminiError | None = None

    @property
    def blocked(self) -> bool:
        """The prompt itself was blocked: no candidate will come."""
        feedback = self.prompt_feedback
        return not self.candidates and feedback is not None and bool(feedback.block_reason)


class _Envelope(_In, kw_only=True):
    error: GeminiError | str | None = None


_RESPONSE = msgspec.json.Decoder(GeminiResponse)
# Vertex sometimes wraps the error object in a one-element array (providers.md §5.6).
_ERROR = msgspec.json.Decoder(_Envelope | list[_Envelope])


def decode_response(body: bytes | str, target: Target) -> GeminiResponse:
    try:
        return _RESPONSE.decode(body)
    except msgspec.DecodeError as exc:
        raise malformed(target.provider.name) from exc


def decode_error(body: bytes) -> GeminiError:
    """The error object of an error body, whatever shape it came in."""
    try:
        decoded = _ERROR.decode(body)
    except msgspec.DecodeError:
        decoded = None
    envelope = decoded[0] if isinstance(decoded, list) and decoded else decoded
    error = envelope.error if isinstance(envelope, _Envelope) else None
    if isinstance(error, GeminiError):
        return error
    text = error if isinstance(error, str) else body_text(body)
    return GeminiError(message=text.strip() or None)


def finish_reason(reason: str | None, *, called: bool) -> FinishReason | None:
    """§16.1's mapping; Gemini says STOP after function calls, which OpenAI calls tool_calls."""
    if reason is None:
        return None
    mapped = _FINISH.get(reason, "stop")
    return "tool_calls" if mapped == "stop" and reason == "STOP" and called else mapped


def to_choice(candidate: GeminiCandidate) -> Choice:
    texts, calls, images = candidate.texts(), candidate.calls(), candidate.images()
    tool_calls = tuple(
        ToolCall(tool_call_id(i, c.name), c.name, compact(c.args)) for i, c in enumerate(calls)
    )
    return Choice(
        index=candidate.index,
        content="".join(texts) if texts or not (calls or images) else None,
        tool_calls=tool_calls or None,
        finish_reason=finish_reason(candidate.finish_reason, called=bool(calls)),
        images=tuple(images) or None,
        logprobs=candidate.logprobs(),
        reasoning=(thought,) if (thought := candidate.thought()) is not None else None,
    )


def compact(args: dict[str, Any] | None) -> str:
    return msgspec.json.encode(args if args is not None else {}).decode()


def to_usage(usage: _Usage) -> Usage:
    """OpenAI counts reasoning inside completion tokens; Gemini reports thoughts apart."""
    thoughts = usage.thoughts_token_count
    details = usage.prompt_tokens_details or []
    images = [d.token_count for d in details if d.modality == "IMAGE"]
    made = [d.token_count for d in usage.candidates_tokens_details or () if d.modality == "IMAGE"]
    return Usage(
        prompt_tokens=usage.prompt_token_count + (usage.tool_use_prompt_token_count or 0),
        completion_tokens=usage.candidates_token_count + (thoughts or 0),
        image_tokens=sum(images) if images else None,
        cached_tokens=usage.cached_content_token_count,
        reasoning_tokens=thoughts,
        output_image_tokens=sum(made) if made else None,
    )


def classify(
    status: int | None, error: GeminiError, headers: Mapping[str, str], target: Target
) -> UpstreamError:
    """The gateway error for a Gemini error; ``status`` is None for one inside a 200 stream."""
    google = error.status or ""
    if status is None or status == 200:
        status = error.code or _STATUS_HTTP.get(google, 500)
    details = _details(error)
    kind = _kind(status, google, details)
    if kind == "rate_limited":
        # Google says when to come back in RetryInfo, not in a header.
        delay = _retry_after(details.get(_RETRY_INFO))
        headers = {"retry-after": delay} if delay is not None else headers
    # Google's message names a path into ITS body (turns merged, system hoisted), which is not
    # the client's: no ``param`` is derived from it.
    return classify_status(
        status, error.message, headers, target.provider.name, kind=kind, transient={499}
    )


def _kind(status: int, google: str, details: Mapping[str, dict[str, Any]]) -> ErrorClass | None:
    """The class Google's structured fields name, in the order they outrank each other."""
    reason = _reason(details)
    if reason in _BILLING_REASONS:
        return "quota"
    if (
        status in (401, 403)
        or google in ("UNAUTHENTICATED", "PERMISSION_DENIED")
        or reason.startswith("API_KEY_")
        or reason in _CREDENTIAL_REASONS
    ):
        return "credentials"
    if status == 429 or google == "RESOURCE_EXHAUSTED":
        return "quota" if _spent(details) else "rate_limited"
    return "timeout" if google == "DEADLINE_EXCEEDED" else None


def _details(error: GeminiError) -> dict[str, dict[str, Any]]:
    """The structured details by ``@type`` (the first of each)."""
    found: dict[str, dict[str, Any]] = {}
    for detail in error.details or ():
        kind = detail.get("@type")
        if isinstance(kind, str):
            found.setdefault(kind, detail)
    return found


def _reason(details: Mapping[str, dict[str, Any]]) -> str:
    reason = details.get(_ERROR_INFO, {}).get("reason")
    return reason if isinstance(reason, str) else ""


def _spent(details: Mapping[str, dict[str, Any]]) -> bool:
    """A QuotaFailure is a spent quota when it names a per-day one, or Google gives no time to
    come back; per-minute limits carry one too, with a RetryInfo."""
    quota = details.get(_QUOTA_FAILURE)
    delay = _retry_after(details.get(_RETRY_INFO))
    return quota is not None and (delay is None or _per_day(quota))


def _per_day(quota: Mapping[str, Any]) -> bool:
    violations = quota.get("violations")
    if not isinstance(violations, list):
        return False
    return any(isinstance(v, dict) and "PerDay" in str(v.get("quotaId", "")) for v in violations)


def _retry_after(info: Mapping[str, Any] | None) -> str | None:
    """``RetryInfo.retryDelay`` (a protobuf Duration in JSON: ``"37s"``, ``"1.5s"``) in whole
    seconds, rounded up, as Retry-After wants."""
    if info is None:
        return None
    delay = info.get("retryDelay")
    if not isinstance(delay, str) or not delay.endswith("s"):
        return None
    try:
        seconds = float(delay[:-1])
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return str(math.ceil(seconds))
