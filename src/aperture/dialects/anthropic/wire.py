"""Wire types of Anthropic Messages requests, as typed in the anthropic SDK.

Content blocks are tagged unions on ``type``, so an unknown block or source type is
reported at its exact path.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["ContentBlock", "MessagesRequest"]


class _Wire(msgspec.Struct, kw_only=True):
    pass


class Base64Source(_Wire, tag="base64", tag_field="type", kw_only=True):
    media_type: str
    data: str


class UrlSource(_Wire, tag="url", tag_field="type", kw_only=True):
    url: str


class CacheControl(_Wire, kw_only=True):
    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] | None = None


class PlainTextSource(_Wire, tag="text", tag_field="type", kw_only=True):
    media_type: str = "text/plain"
    data: str


class DocumentBlock(_Wire, tag="document", tag_field="type", kw_only=True):
    source: Base64Source | UrlSource | PlainTextSource
    title: str | None = None
    context: str | None = None
    citations: dict[str, Any] | None = None
    cache_control: CacheControl | None = None


class TextBlock(_Wire, tag="text", tag_field="type", kw_only=True):
    text: str
    cache_control: CacheControl | None = None


class ImageBlock(_Wire, tag="image", tag_field="type", kw_only=True):
    source: Base64Source | UrlSource
    cache_control: CacheControl | None = None


class ToolUseBlock(_Wire, tag="tool_use", tag_field="type", kw_only=True):
    id: str
    name: str
    input: dict[str, Any]
    cache_control: CacheControl | None = None


class ToolResultBlock(_Wire, tag="tool_result", tag_field="type", kw_only=True):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] = ""
    is_error: bool | None = None
    cache_control: CacheControl | None = None


class ThinkingBlock(_Wire, tag="thinking", tag_field="type", kw_only=True):
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(_Wire, tag="redacted_thinking", tag_field="type", kw_only=True):
    data: str


ContentBlock = (
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
)


class ThinkingEnabled(_Wire, tag="enabled", tag_field="type", kw_only=True):
    budget_tokens: int
    display: Literal["summarized", "omitted"] | None = None


class ThinkingAdaptive(_Wire, tag="adaptive", tag_field="type", kw_only=True):
    display: Literal["summarized", "omitted"] | None = None


class ThinkingDisabled(_Wire, tag="disabled", tag_field="type", kw_only=True):
    pass


ThinkingParam = ThinkingEnabled | ThinkingAdaptive | ThinkingDisabled


class MessageParam(_Wire, kw_only=True):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class ToolParam(_Wire, kw_only=True):
    name: str
    description: str | None = None
    input_schema: dict[str, Any]
    cache_control: CacheControl | None = None


class ToolChoiceParam(_Wire, kw_only=True):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Metadata(_Wire, kw_only=True):
    user_id: str | None = None


class JsonSchemaFormat(_Wire, tag="json_schema", tag_field="type", kw_only=True):
    schema: dict[str, Any]


class OutputConfig(_Wire, kw_only=True):
    # Structured outputs (what the Vercel AI SDK's generateObject sends). ``effort`` is not
    # modelled: like any field this gateway does not know, it is not sent to the provider.
    format: JsonSchemaFormat | None = None


class MessagesRequest(_Wire, kw_only=True):
    model: str
    max_tokens: int
    messages: list[MessageParam]
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    metadata: Metadata | None = None
    stream: bool | None = None
    thinking: ThinkingParam | None = None
    output_config: OutputConfig | None = None
    cache_control: CacheControl | None = None


MODELLED_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(MessagesRequest))


class CountTokensRequest(_Wire, kw_only=True):
    """``POST /v1/messages/count_tokens``: a Messages request without what only an answer
    needs (``max_tokens``, sampling, ``stream``)."""

    model: str
    messages: list[MessageParam]
    system: str | list[TextBlock] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    thinking: ThinkingParam | None = None
    cache_control: CacheControl | None = None


COUNT_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(CountTokensRequest))
