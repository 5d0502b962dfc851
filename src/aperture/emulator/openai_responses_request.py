"""Reading a Responses API request (``POST /v1/responses``) the way OpenAI does.

What the real API refuses is refused here with its message, ``param`` and ``code``: unknown
top-level fields, items and parts of the wrong type or role, an image without its required
``detail``, a ``function_call_output`` whose ``call_id`` no earlier ``function_call`` has,
``json_object`` without the word "json" in the input, ``max_output_tokens`` below 16, and a
``previous_response_id`` (the emulator keeps nothing, so none is ever found).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import msgspec

from aperture.emulator.describe import Seen, SeenImage
from aperture.emulator.openai_errors import (
    UNPARSABLE_JSON,
    OpenAIError,
    bad_image_url,
    invalid_type,
    invalid_value,
    missing,
    required,
)
from aperture.emulator.openai_request import read_data_uri

__all__ = ["ResponsesCall", "parse_responses_request"]

# ResponseCreateParams' fields (openai/types/responses/response_create_params.py).
FIELDS = frozenset(
    {
        "background", "context_management", "conversation", "include", "input", "instructions",
        "max_output_tokens", "max_tool_calls", "metadata", "model", "parallel_tool_calls",
        "previous_response_id", "prompt", "prompt_cache_key", "prompt_cache_retention",
        "reasoning", "safety_identifier", "service_tier", "store", "stream", "stream_options",
        "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation",
        "user",
    }
)  # fmt: skip
ROLES = ("user", "assistant", "system", "developer")
ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning")
INPUT_PARTS = ("input_text", "input_image", "input_file")
ASSISTANT_PARTS = ("output_text", "refusal")
DETAILS = ("low", "high", "auto", "original")
FORMATS = ("text", "json_schema", "json_object")
TOOL_CHOICES = ("none", "auto", "required")
MIN_OUTPUT_TOKENS = 16
# ResponseIncludable (openai/types/responses/response_includable.py).
INCLUDABLE = (
    "file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
    "message.input_image.image_url", "computer_call_output.output.image_url",
    "code_interpreter_call.outputs", "reasoning.encrypted_content",
    "message.output_text.logprobs",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ResponsesCall:
    model: str
    seen: Seen
    stream: bool
    max_words: int | None
    json_mode: bool
    tool_name: str | None
    """Set when ``tool_choice`` forces a call: the tool the answer calls."""
    instructions: str | None
    logprobs: int | None = None
    """With ``include: ["message.output_text.logprobs"]``: how many alternatives (top_logprobs)."""


@dataclass(slots=True)
class _Collector:
    text_only: bool
    images: list[SeenImage] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    system: list[str] = field(default_factory=list)
    calls: set[str] = field(default_factory=set)
    asked: str = ""


def parse_responses_request(body: bytes) -> ResponsesCall:
    """Validate a request body.

    Raises:
        OpenAIError: what OpenAI would answer for the same body.
    """
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise OpenAIError(400, UNPARSABLE_JSON) from None
    if not isinstance(data, dict):
        raise invalid_type("body", "an object", data)
    for key in data:
        if key not in FIELDS:
            raise OpenAIError(
                400, f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter"
            )
    model = required(data, "model")
    if not isinstance(model, str):
        raise invalid_type("model", "a string", model)
    previous = data.get("previous_response_id")
    if previous is not None:
        raise OpenAIError(
            400,
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    collector = _Collector(text_only="text" in model.lower())
    instructions = data.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid_type("instructions", "a string", instructions)
        collector.system.append(instructions)
    _read_input(collector, required(data, "input"))
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid_type("stream", "a boolean", stream)
    _check_sampling(data)
    seen = Seen(
        images=tuple(collector.images),
        asked=collector.asked,
        system=" ".join(collector.system) if collector.system else None,
        text_chars=sum(len(text) for text in collector.texts),
    )
    return ResponsesCall(
        model=model,
        seen=seen,
        stream=stream,
        max_words=_max_output_tokens(data),
        json_mode=_text_format(data, collector.texts),
        tool_name=_tools(data),
        instructions=instructions,
        logprobs=_logprobs(data),
    )


def _read_input(collector: _Collector, items: object) -> None:
    if isinstance(items, str):
        collector.texts.append(items)
        collector.asked = items
        return
    if not isinstance(items, list):
        raise invalid_type("input", "one of a string or array of objects", items)
    for i, item in enumerate(items):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise invalid_type(param, "an object", item)
        kind = item.get("type", "message" if "role" in item else None)
        if kind is None:
            raise missing(f"{param}.type")
        if kind not in ITEM_TYPES:
            raise invalid_value(f"{param}.type", str(kind), ITEM_TYPES)
        if kind == "message":
            _read_message(collector, param, item)
        elif kind == "function_call":
            _read_call(collector, param, item)
        elif kind == "function_call_output":
            _read_call_output(collector, param, item)


def _read_call(collector: _Collector, param: str, item: Mapping[str, object]) -> None:
    for key in ("call_id", "name", "arguments"):
        value = required(item, key, param)
        if not isinstance(value, str):
            raise invalid_type(f"{param}.{key}", "a string", value)
    collector.calls.add(str(item["call_id"]))


def _read_call_output(collector: _Collector, param: str, item: Mapping[str, object]) -> None:
    call_id = required(item, "call_id", param)
    output = required(item, "output", param)
    if not isinstance(output, str | list):
        raise invalid_type(f"{param}.output", "one of a string or array", output)
    if call_id not in collector.calls:
        raise OpenAIError(
            400,
            f"No tool call found for function call output with call_id {call_id}.",
            param="input",
        )


def _read_message(collector: _Collector, param: str, item: Mapping[str, object]) -> None:
    role = required(item, "role", param)
    if role not in ROLES:
        raise invalid_value(f"{param}.role", str(role), ROLES)
    content = required(item, "content", param)
    texts: list[str] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        allowed = ASSISTANT_PARTS if role == "assistant" else INPUT_PARTS
        for j, part in enumerate(content):
            text = _read_part(collector, f"{param}.content[{j}]", part, allowed)
            if text is not None:
                texts.append(text)
    else:
        raise invalid_type(f"{param}.content", "one of a string or array of objects", content)
    collector.texts.extend(texts)
    if role == "user":
        collector.asked = " ".join(texts)
    elif role in ("system", "developer"):
        collector.system.extend(texts)


def _read_part(
    collector: _Collector, param: str, part: object, allowed: tuple[str, ...]
) -> str | None:
    if not isinstance(part, dict):
        raise invalid_type(param, "an object", part)
    kind = required(part, "type", param)
    if kind not in allowed:
        raise invalid_value(f"{param}.type", str(kind), allowed)
    if kind in ("input_text", "output_text"):
        text = required(part, "text", param)
        if not isinstance(text, str):
            raise invalid_type(f"{param}.text", "a string", text)
        return text
    if kind == "refusal":
        return None
    if kind == "input_file":
        if not any(part.get(k) for k in ("file_data", "file_id", "file_url")):
            raise missing(f"{param}.file_data")
        return None
    if collector.text_only:
        raise OpenAIError(
            400,
            "Invalid content type. image_url is only supported by certain models.",
            param=f"{param}.type",
        )
    collector.images.append(_read_image(param, part))
    return None


def _read_image(param: str, part: Mapping[str, object]) -> SeenImage:
    detail = required(part, "detail", param)
    if detail not in DETAILS:
        raise invalid_value(f"{param}.detail", str(detail), DETAILS)
    url = part.get("image_url")
    if url is None:
        if part.get("file_id") is not None:
            raise OpenAIError(404, f"The file {part['file_id']!r} does not exist.", param=param)
        raise missing(f"{param}.image_url")
    if not isinstance(url, str):
        raise invalid_type(f"{param}.image_url", "a string", url)
    scheme = url.partition(":")[0].lower()
    if scheme in ("http", "https"):
        host = urlsplit(url).hostname
        if not host:
            raise bad_image_url(f"{param}.image_url", "a URL without a host")
        return SeenImage(detail=str(detail), host=host)
    if scheme != "data":
        raise bad_image_url(f"{param}.image_url", f"the unsupported URL scheme '{scheme}'")
    # The emulator counts tiles as for Chat Completions; "original" costs like "high".
    return read_data_uri(f"{param}.image_url", url, "high" if detail == "original" else detail)


def _logprobs(data: Mapping[str, object]) -> int | None:
    include = data.get("include") or []
    if not isinstance(include, list):
        raise invalid_type("include", "an array", include)
    for i, value in enumerate(include):
        if value not in INCLUDABLE:
            raise invalid_value(f"include[{i}]", str(value), INCLUDABLE)
    top = data.get("top_logprobs")
    if top is not None and (
        isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20
    ):
        raise OpenAIError(
            400,
            f"Invalid 'top_logprobs': expected an integer between 0 and 20, but got {top}.",
            param="top_logprobs",
            code="invalid_value",
        )
    if "message.output_text.logprobs" not in include:
        return None
    return top or 0


def _check_sampling(data: Mapping[str, object]) -> None:
    for key, top in (("temperature", 2.0), ("top_p", 1.0)):
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid_type(key, "a number", value)
        if not 0 <= value <= top:
            raise OpenAIError(
                400,
                f"Invalid '{key}': decimal out of range. Expected a value between 0 and {top:g}, "
                f"but got {value} instead.",
                param=key,
                code="decimal_out_of_range",
            )


def _max_output_tokens(data: Mapping[str, object]) -> int | None:
    value = data.get("max_output_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type("max_output_tokens", "an integer", value)
    if value < MIN_OUTPUT_TOKENS:
        raise OpenAIError(
            400,
            f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
            f"{MIN_OUTPUT_TOKENS}, but got {value} instead.",
            param="max_output_tokens",
            code="integer_below_min_value",
        )
    return value


def _text_format(data: Mapping[str, object], texts: list[str]) -> bool:
    text = data.get("text")
    if text is None:
        return False
    if not isinstance(text, dict):
        raise invalid_type("text", "an object", text)
    spec = text.get("format")
    if spec is None:
        return False
    if not isinstance(spec, dict):
        raise invalid_type("text.format", "an object", spec)
    kind = required(spec, "type", "text.format")
    if kind not in FORMATS:
        raise invalid_value("text.format.type", str(kind), FORMATS)
    if kind == "json_schema":
        for key in ("name", "schema"):
            required(spec, key, "text.format")
    if kind == "json_object" and not any("json" in t.lower() for t in texts):
        raise OpenAIError(
            400,
            "Response input messages must contain the word 'json' in some form to use "
            "'text.format' of type 'json_object'.",
            param="input",
        )
    return kind != "text"


def _function_names(tools: object) -> list[str]:
    names: list[str] = []
    if tools is None:
        return names
    if not isinstance(tools, list):
        raise invalid_type("tools", "an array", tools)
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise invalid_type(f"tools[{i}]", "an object", tool)
        if required(tool, "type", f"tools[{i}]") != "function":
            continue  # built-in tools: accepted, never called by the emulator
        name = required(tool, "name", f"tools[{i}]")
        if not isinstance(name, str):
            raise invalid_type(f"tools[{i}].name", "a string", name)
        names.append(name)
    return names


def _tools(data: Mapping[str, object]) -> str | None:
    choice = data.get("tool_choice")
    names = _function_names(data.get("tools"))
    if choice is None or choice in ("none", "auto"):
        return None
    if choice == "required":
        if not names:
            raise OpenAIError(
                400,
                "Tool choice 'required' must be specified with 'tools' parameter.",
                param="tool_choice",
            )
        return names[0]
    if isinstance(choice, str):
        raise invalid_value("tool_choice", choice, TOOL_CHOICES)
    if not isinstance(choice, dict):
        raise invalid_type("tool_choice", "one of a string or object", choice)
    name = choice.get("name")
    if not isinstance(name, str):
        raise missing("tool_choice.name")
    if name not in names:
        raise OpenAIError(
            400,
            f"Tool choice '{name}' not found in 'tools' parameter.",
            param="tool_choice",
        )
    return name
