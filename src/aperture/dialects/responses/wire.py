"""Wire types of OpenAI Responses API requests, as typed in the official SDK.

Input items are decoded one by one (see ``inbound``): a message item may leave out its
``type``, so the list is not a tagged union msgspec could decode in one pass.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["InputItem", "ResponsesRequest"]


class _Wire(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class InputText(_Wire, tag="input_text", tag_field="type", kw_only=True):
    text: str


class InputImage(_Wire, tag="input_image", tag_field="type", kw_only=True):
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["auto", "low", "high", "original"] | None = None


class InputFile(_Wire, tag="input_file", tag_field="type", kw_only=True):
    file_data: str | None = None
    file_id: str | None = None
    file_url: str | None = None
    filename: str | None = None


class OutputText(_Wire, tag="output_text", tag_field="type", kw_only=True):
    # Earlier answers replayed as input carry their annotations; they are not the model's.
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class Refusal(_Wire, tag="refusal", tag_field="type", kw_only=True):
    refusal: str


ContentPart = InputText | InputImage | InputFile | OutputText | Refusal


class MessageItem(_Wire, tag="message", tag_field="type", kw_only=True):
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None
    status: str | None = None
    phase: str | None = None


class FunctionCallItem(_Wire, tag="function_call", tag_field="type", kw_only=True):
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(_Wire, tag="function_call_output", tag_field="type", kw_only=True):
    call_id: str
    output: str | list[InputText | InputImage | InputFile]
    id: str | None = None
    status: str | None = None


class ReasoningItem(_Wire, tag="reasoning", tag_field="type", kw_only=True):
    # Replayed reasoning is provider-private (often encrypted): it cannot cross providers.
    id: str | None = None
    summary: list[Any] | None = None
    content: list[Any] | None = None
    encrypted_content: str | None = None
    status: str | None = None


class ItemReference(_Wire, tag="item_reference", tag_field="type", kw_only=True):
    # An output item of a kept answer, by its id: what the Vercel AI SDK sends for earlier
    # assistant turns when the answers are stored (its default).
    id: str


InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem | ItemReference


class FunctionTool(_Wire, tag="function", tag_field="type", kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ImageGenerationTool(_Wire, tag="image_generation", tag_field="type", kw_only=True):
    """OpenAI's built-in tool: asks the answer to hold images (Chat's ``modalities``).

    The picture comes from the model the request names, as its provider makes it: the
    settings below are accepted for the SDK's sake, and are not passed on, since Gemini's
    and OpenAI-compatible image models have no such knobs on a chat turn.
    """

    action: Literal["generate", "edit", "auto"] | None = None
    background: str | None = None
    input_fidelity: str | None = None
    model: str | None = None
    moderation: str | None = None
    output_compression: int | None = None
    output_format: str | None = None
    partial_images: int | None = None
    quality: str | None = None
    size: str | None = None


class FunctionChoice(_Wire, tag="function", tag_field="type", kw_only=True):
    name: str


class ImageGenerationChoice(_Wire, tag="image_generation", tag_field="type", kw_only=True):
    pass


class TextFormatText(_Wire, tag="text", tag_field="type", kw_only=True):
    pass


class TextFormatJsonObject(_Wire, tag="json_object", tag_field="type", kw_only=True):
    pass


class TextFormatJsonSchema(_Wire, tag="json_schema", tag_field="type", kw_only=True):
    name: str
    schema: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


class TextConfig(_Wire, kw_only=True):
    format: TextFormatText | TextFormatJsonObject | TextFormatJsonSchema | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(_Wire, kw_only=True):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class ResponsesRequest(_Wire, kw_only=True):
    model: str
    # Items stay plain JSON values here; ``inbound`` decodes each with its own path.
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[FunctionTool | ImageGenerationTool] | None = None
    tool_choice: (
        Literal["auto", "none", "required"] | FunctionChoice | ImageGenerationChoice | None
    ) = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    reasoning: Reasoning | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    stream: bool | None = None
    user: str | None = None
    previous_response_id: str | None = None
    # Accepted and without effect here: hints for OpenAI's own serving and caching.
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    top_logprobs: int | None = None
    background: bool | None = None


MODELLED_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(ResponsesRequest))
