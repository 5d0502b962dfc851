"""OpenAI and any OpenAI-compatible server (vLLM, llama.cpp, Ollama's /v1, LM Studio...).

Pure: builds Chat Completions requests and parses responses, streams and errors.

Canonical ``reasoning`` goes out as ``reasoning_effort`` (a budget as the effort it reaches,
``aperture.model.reasoning``; "disabled" without an effort is left to the model's default).
The reasoning text OpenAI-compatible servers return as ``reasoning_content`` (DeepSeek, vLLM)
or ``reasoning`` (OpenRouter, newer vLLM) comes back as canonical thoughts; it is not sent
back upstream, as OpenAI's own API has no such message field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from aperture.errors import (
    ImageDecodeError,
    UpstreamError,
)
from aperture.media.datauri import parse_data_uri
from aperture.model import (
    Audio,
    ChatRequest,
    ChatResponse,
    Choice,
    Delta,
    File,
    GeneratedImage,
    Image,
    ImageTask,
    Message,
    NamedToolChoice,
    Part,
    StreamEvent,
    Target,
    Text,
    Thought,
    ToolCall,
    ToolCallDelta,
    Usage,
    Video,
)
from aperture.providers._json_body import encode_body, verbatim
from aperture.providers._logprobs import WireLogprobs, WireToken, from_tokens
from aperture.providers._openai_images import build_images_body, images_path
from aperture.providers._status import ErrorClass, body_text, classify_status, malformed
from aperture.providers._stream import StreamAssembler
from aperture.providers.registry import spec_for
from aperture.upstream import Framing, SseEvent, UpstreamRequest

__all__ = ["OpenAIProvider"]
_FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
# The ``error.code`` (or ``type``) values meaning the account cannot pay, whatever the status
# (a 429, or a 400 for the billing hard limit): waiting or retrying does not help. Seen in
# OpenAI's answers: ``insufficient_quota`` (credit or monthly budget spent, 429),
# ``billing_hard_limit_reached`` (400), ``billing_not_active`` (429); OpenAI-compatible hosts
# behind this adapter reuse them, and ``enforced_spend_limit_reached`` names a spend cap.
_QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "billing_hard_limit_reached",
        "billing_not_active",
        "enforced_spend_limit_reached",
    }
)
_CODES: Mapping[str, ErrorClass] = {
    **dict.fromkeys(_QUOTA_CODES, "quota"),
    "rate_limit_exceeded": "rate_limited",
}


class _In(msgspec.Struct, kw_only=True):
    pass


class _Function(_In, kw_only=True):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(_In, kw_only=True):
    index: int = 0
    id: str | None = None
    function: _Function = msgspec.field(default_factory=_Function)


class _ImageUrl(_In, kw_only=True):
    url: str = ""


class _ImageOut(_In, kw_only=True):
    """An image in ``message.images`` / ``delta.images``: the convention OpenAI-compatible
    servers and routers use for image-output models (``type: image_url``, a data URI)."""

    type: str = "image_url"
    image_url: _ImageUrl = msgspec.field(default_factory=_ImageUrl)


class _Message(_In, kw_only=True):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None
    images: list[_ImageOut] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None

    @property
    def thought(self) -> str | None:
        return self.reasoning_content or self.reasoning

    def carries_anything(self) -> bool:
        return bool(
            self.role or self.content or self.refusal or self.tool_calls or self.images
        ) or bool(self.thought)


class _Choice(_In, kw_only=True):
    index: int = 0
    message: _Message | None = None
    delta: _Message | None = None
    finish_reason: str | None = None
    logprobs: WireLogprobs | None = None


class _PromptDetails(_In, kw_only=True):
    cached_tokens: int | None = None
    image_tokens: int | None = None


class _CompletionDetails(_In, kw_only=True):
    reasoning_tokens: int | None = None


class _Usage(_In, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None
    # The Images API's names for the same counts (its output tokens are all image tokens).
    input_tokens: int | None = None
    output_tokens: int | None = None
    input_tokens_details: _PromptDetails | None = None


class _ErrorObject(_In, kw_only=True):
    message: str | None = None
    type: str | None = None
    code: str | int | None = None
    param: str | None = None


class _ImageDatum(_In, kw_only=True):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class _Completion(_In, kw_only=True):
    """A chat completion, or an ``ImagesResponse`` (``data``) from the Images API."""

    data: list[_ImageDatum] | None = None
    output_format: str | None = None
    id: str = ""
    created: int = 0
    model: str = ""
    choices: list[_Choice] = []
    usage: _Usage | None = None
    system_fingerprint: str | None = None
    error: _ErrorObject | None = None


class _ErrorEnvelope(_In, kw_only=True):
    error: _ErrorObject | str | None = None


_COMPLETION = msgspec.json.Decoder(_Completion)
_ERROR = msgspec.json.Decoder(_ErrorEnvelope)


class OpenAIProvider:
    """The ``openai`` provider kind."""

    stream_framing: ClassVar[Framing] = "sse"
    stream_ends_with_body: ClassVar[bool] = False

    def build_request(self, request: ChatRequest, target: Target) -> UpstreamRequest:
        if request.image_task is not None:
            return self._images_request(request, request.image_task, target)
        return self._chat_request(request, target)

    def _chat_request(self, request: ChatRequest, target: Target) -> UpstreamRequest:
        provider = target.provider
        body: dict[str, Any] = {
            "model": target.upstream_model,
            "messages": [_message(m) for m in request.messages],
        }
        if request.max_tokens is not None:
            body[provider.max_tokens_field] = request.max_tokens
        body.update(_scalars(request))
        if request.stop is not None:
            body["stop"] = list(request.stop)
        reasoning = request.reasoning
        if reasoning is not None and (reasoning.enabled or reasoning.effort is not None):
            body["reasoning_effort"] = reasoning.level
        if request.tools is not None:
            body["tools"] = [_tool(t) for t in request.tools]
        if request.tool_choice is not None:
            choice = request.tool_choice
            body["tool_choice"] = (
                {"type": "function", "function": {"name": choice.name}}
                if isinstance(choice, NamedToolChoice)
                else choice
            )
        if request.response_format is not None:
            body["response_format"] = _omit_none(
                {
                    "type": request.response_format.type,
                    "json_schema": request.response_format.json_schema,
                }
            )
        if request.stream:
            # Always ask for usage: the gateway accounts for it even when the client did not.
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        body.update(request.extra)
        headers = {"Content-Type": "application/json", **provider.headers}
        if provider.api_key:
            headers["Authorization"] = f"Bearer {provider.api_key}"
        base = (provider.base_url or spec_for(provider.kind).base_url or "").rstrip("/")
        return UpstreamRequest(f"{base}/chat/completions", headers, encode_body(body))

    def _images_request(
        self, request: ChatRequest, task: ImageTask, target: Target
    ) -> UpstreamRequest:
        provider = target.provider
        body, content_type = build_images_body(request, task, target)
        headers = {**provider.headers, "Content-Type": content_type}
        if provider.api_key:
            headers["Authorization"] = f"Bearer {provider.api_key}"
        base = (provider.base_url or spec_for(provider.kind).base_url or "").rstrip("/")
        return UpstreamRequest(f"{base}{images_path(task)}", headers, body)

    def parse_response(self, body: bytes, target: Target) -> ChatResponse:
        try:
            completion = _COMPLETION.decode(body)
        except msgspec.DecodeError as exc:
            raise malformed(target.provider.name) from exc
        if completion.error is not None:
            raise _classify(200, completion.error, {}, target)
        if completion.data is not None:
            return _images_answer(completion, target)
        choices = tuple(_choice(c, target) for c in completion.choices)
        return ChatResponse(
            id=completion.id,
            model=completion.model,
            created=completion.created,
            choices=choices,
            usage=_usage(completion.usage) if completion.usage is not None else None,
            system_fingerprint=completion.system_fingerprint,
        )

    def stream_parser(self, target: Target) -> _StreamParser:
        return _StreamParser(target)

    def parse_error(
        self, status: int, body: bytes, headers: Mapping[str, str], target: Target
    ) -> UpstreamError:
        try:
            envelope = _ERROR.decode(body)
            error = envelope.error
        except msgspec.DecodeError:
            error = None
        if not isinstance(error, _ErrorObject):
            text = error if isinstance(error, str) else body_text(body)
            error = _ErrorObject(message=text)
        return _classify(status, error, headers, target)


class _StreamParser:
    def __init__(self, target: Target) -> None:
        self._target = target
        self.done = False
        self._asm = StreamAssembler()

    def feed(self, event: SseEvent) -> list[StreamEvent]:
        if event.data == "[DONE]":
            self.done = True
            return []
        try:
            chunk = _COMPLETION.decode(event.data)
        except msgspec.DecodeError as exc:
            raise malformed(self._target.provider.name) from exc
        if chunk.error is not None:
            raise _classify(500, chunk.error, {}, self._target)
        asm = self._asm
        for choice in chunk.choices:
            logprobs = choice.logprobs.content if choice.logprobs is not None else None
            delta = choice.delta
            if delta is not None and (delta.carries_anything() or logprobs):
                thought = delta.thought
                if thought:
                    # Its own event: renderers take a delta's thought or its content, not both.
                    asm.delta(Delta(index=choice.index, role=delta.role, thought=Thought(thought)))
                    delta = msgspec.structs.replace(
                        delta, role=None, reasoning_content=None, reasoning=None
                    )
                if delta.carries_anything() or logprobs:
                    # The wire is the canonical shape already: a chunk's delta is one canonical one.
                    asm.delta(_delta(choice.index, delta, self._target, logprobs))
            asm.finish(_finish_reason(choice.finish_reason), choice.index)
        if chunk.usage is not None:
            asm.usage(_usage(chunk.usage))
        return asm.drain()


def _delta(
    index: int, delta: _Message, target: Target, logprobs: list[WireToken] | None = None
) -> Delta:
    calls = delta.tool_calls
    return Delta(
        logprobs=from_tokens(logprobs) if logprobs else None,
        images=_images(delta.images, target),
        index=index,
        role=delta.role,
        content=delta.content,
        refusal=delta.refusal,
        tool_calls=tuple(
            ToolCallDelta(t.index, t.id, t.function.name, t.function.arguments) for t in calls
        )
        if calls
        else None,
    )


_SCALARS = (
    "temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", "n", "user",
    "parallel_tool_calls", "top_logprobs",
)  # fmt: skip


def _scalars(request: ChatRequest) -> dict[str, Any]:
    """The request's plain fields that are set, under their own (OpenAI's) names."""
    body = {f: v for f in _SCALARS if (v := getattr(request, f)) is not None}
    if request.logprobs:
        body["logprobs"] = True
    return body


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    content = message.content
    if content is None or isinstance(content, str):
        out["content"] = content
    else:
        out["content"] = [_part(p) for p in content]
    if message.name is not None:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _part(part: Part) -> dict[str, Any]:
    match part:
        case Text(text=text):
            return {"type": "text", "text": text}
        case Image(url=url, detail=detail, inline=inline):
            # A checked image's data URI is canonical and strict base64: written unscanned.
            image: dict[str, Any] = {"url": verbatim(url) if inline is not None else url}
            if detail is not None:
                image["detail"] = detail
            return {"type": "image_url", "image_url": image}
        case Audio(data=data, format=fmt):
            return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}
        case Video(url=url):
            return {"type": "video_url", "video_url": {"url": url}}
        case File(file_id=file_id, file_data=file_data, filename=filename, inline=inline):
            # OpenAI refuses file_data without a filename; checked bytes get a neutral one.
            if filename is None and inline is not None:
                filename = "document.pdf"
            file = _omit_none({"file_id": file_id, "file_data": file_data, "filename": filename})
            return {"type": "file", "file": file}


def _tool(tool: Any) -> dict[str, Any]:
    function = _omit_none(
        {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
            "strict": tool.strict,
        }
    )
    return {"type": "function", "function": function}


def _omit_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _images_answer(response: _Completion, target: Target) -> ChatResponse:
    """An ``ImagesResponse`` as one choice holding every image."""
    mime = f"image/{response.output_format or 'png'}"
    images = []
    for datum in response.data or ():
        if datum.b64_json is None:
            raise malformed(target.provider.name)  # a URL: the gateway asked for bytes
        images.append(GeneratedImage(mime, datum.b64_json))
    usage = response.usage
    tokens = None
    if usage is not None:
        details = usage.input_tokens_details
        output = usage.output_tokens or 0
        tokens = Usage(
            prompt_tokens=usage.input_tokens or 0,
            completion_tokens=output,
            image_tokens=details.image_tokens if details is not None else None,
            output_image_tokens=output,
        )
    choice = Choice(index=0, content=None, finish_reason="stop", images=tuple(images) or None)
    return ChatResponse(
        id="",
        model=target.upstream_model,
        created=response.created,
        choices=(choice,),
        usage=tokens,
    )


def _images(images: list[_ImageOut] | None, target: Target) -> tuple[GeneratedImage, ...] | None:
    """Generated images as data URIs; anything else is not an answer this adapter can relay."""
    if not images:
        return None
    out = []
    for image in images:
        url = image.image_url.url
        try:
            uri = parse_data_uri(url)
        except ImageDecodeError as exc:
            raise malformed(target.provider.name) from exc
        out.append(GeneratedImage(uri.mime, url[uri.payload_offset :]))
    return tuple(out)


def _choice(choice: _Choice, target: Target) -> Choice:
    message = choice.message or _Message()
    calls = (
        tuple(
            ToolCall(c.id or "", c.function.name or "", c.function.arguments or "")
            for c in message.tool_calls
        )
        if message.tool_calls
        else None
    )
    return Choice(
        index=choice.index,
        content=message.content,
        tool_calls=calls,
        refusal=message.refusal,
        finish_reason=_finish_reason(choice.finish_reason),
        images=_images(message.images, target),
        logprobs=from_tokens(choice.logprobs.content) if choice.logprobs is not None else None,
        reasoning=(Thought(message.thought),) if message.thought else None,
    )


def _finish_reason(reason: str | None) -> Any:
    if reason is None:
        return None
    return reason if reason in _FINISH_REASONS else "stop"


def _usage(usage: _Usage) -> Usage:
    prompt = usage.prompt_tokens_details
    completion = usage.completion_tokens_details
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        image_tokens=prompt.image_tokens if prompt else None,
        cached_tokens=prompt.cached_tokens if prompt else None,
        reasoning_tokens=completion.reasoning_tokens if completion else None,
    )


def _classify(
    status: int, error: _ErrorObject, headers: Mapping[str, str], target: Target
) -> UpstreamError:
    """Classify by status and the provider's documented codes, never by message text."""
    code = str(error.code or error.type or "")
    kind = "quota" if error.type in _QUOTA_CODES else _CODES.get(code)
    param = error.param if isinstance(error.param, str) else None
    # An error object inside a 200 body or stream: the provider failed after accepting.
    return classify_status(
        None if status == 200 else status,
        error.message,
        headers,
        target.provider.name,
        kind=kind,
        param=param,
    )
