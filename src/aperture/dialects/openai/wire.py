"""Wire types of OpenAI Chat Completions requests, as documented and typed in the SDK.

Content parts and messages are tagged unions, so a bad ``type`` or ``role`` is reported
at its exact path. Fields we do not model are caught separately (see ``inbound``).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["ChatCompletionRequest", "ContentPart", "RequestMessage"]


class _Wire(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class ImageURL(_Wire, kw_only=True):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class TextPart(_Wire, tag="text", tag_field="type", kw_only=True):
    text: str


class ImageURLPart(_Wire, tag="image_url", tag_field="type", kw_only=True):
    # Mistral-style clients send the URL as a bare string; accept both shapes.
    image_url: ImageURL | str


class InputAudio(_Wire, kw_only=True):
    data: str
    format: str


class InputAudioPart(_Wire, tag="input_audio", tag_field="type", kw_only=True):
    input_audio: InputAudio


class VideoURL(_Wire, kw_only=True):
    url: str


class VideoURLPart(_Wire, tag="video_url", tag_field="type", kw_only=True):
    # Not in OpenAI's API; vLLM, Qwen and other OpenAI-compatible servers take it.
    video_url: VideoURL


class FileData(_Wire, kw_only=True):
    file_id: str | None = None
    file_data: str | None = None
    filename: str | None = None


class FilePart(_Wire, tag="file", tag_field="type", kw_only=True):
    file: FileData


class RefusalPart(_Wire, tag="refusal", tag_field="type", kw_only=True):
    refusal: str


ContentPart = TextPart | ImageURLPart | InputAudioPart | VideoURLPart | FilePart
TextContent = str | list[TextPart]


class FunctionCall(_Wire, kw_only=True):
    name: str
    arguments: str


class ToolCallWire(_Wire, kw_only=True):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Wire, tag="system", tag_field="role", kw_only=True):
    content: TextContent
    name: str | None = None


class DeveloperMessage(_Wire, tag="developer", tag_field="role", kw_only=True):
    content: TextContent
    name: str | None = None


class UserMessage(_Wire, tag="user", tag_field="role", kw_only=True):
    content: str | list[ContentPart]
    name: str | None = None


class ReasoningDetail(_Wire, kw_only=True):
    """OpenRouter's ``reasoning_details`` item: a thought with its signature
    (``reasoning.text``), or an encrypted one (``reasoning.encrypted``)."""

    type: str
    text: str | None = None
    signature: str | None = None
    data: str | None = None


class AssistantMessage(_Wire, tag="assistant", tag_field="role", kw_only=True):
    content: str | list[TextPart | RefusalPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallWire] | None = None
    refusal: str | None = None
    # The model's reasoning, as DeepSeek, vLLM and OpenRouter return it and take it back.
    reasoning_content: str | None = None
    # The same with signatures, which the provider that signed them wants back.
    reasoning_details: list[ReasoningDetail] | None = None


class ToolMessage(_Wire, tag="tool", tag_field="role", kw_only=True):
    content: TextContent
    tool_call_id: str


RequestMessage = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage


class FunctionDefinition(_Wire, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(_Wire, kw_only=True):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedFunction(_Wire, kw_only=True):
    name: str


class NamedToolChoiceWire(_Wire, kw_only=True):
    type: Literal["function"] = "function"
    function: NamedFunction


class ResponseFormatWire(_Wire, kw_only=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class StreamOptions(_Wire, kw_only=True):
    include_usage: bool | None = None


class ChatCompletionRequest(_Wire, kw_only=True):
    model: str
    messages: list[RequestMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    user: str | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoiceWire | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormatWire | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None


MODELLED_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(ChatCompletionRequest))
