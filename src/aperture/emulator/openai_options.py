"""The Chat Completions options that shape the answer: streaming, length, JSON mode, tools."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aperture.emulator.openai_errors import (
    OpenAIError,
    empty_array,
    invalid_type,
    invalid_value,
    missing,
    required,
)

__all__ = [
    "MAX_N",
    "REASONING_TOKENS",
    "STANDARD_FIELDS",
    "Sampling",
    "read_max_tokens",
    "read_reasoning_effort",
    "read_response_format",
    "read_sampling",
    "read_stream",
    "read_tools",
    "unknown_field",
]

RESPONSE_FORMATS = ("text", "json_object", "json_schema")
TOOL_CHOICES = ("none", "auto", "required")
MAX_N = 128
MAX_TOP_LOGPROBS = 20
# Exactly the fields of the SDK's ``CompletionCreateParams`` (plus ``stream``); OpenAI refuses
# any other top-level field. tests/emulator checks this list against the installed SDK.
STANDARD_FIELDS = frozenset(
    {
        "function_call",
        "functions",
        "moderation",
        "prompt_cache_options",
        "prompt_cache_retention",
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "user",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "stream",
        "stream_options",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "metadata",
        "store",
        "service_tier",
        "reasoning_effort",
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
        "verbosity",
        "prompt_cache_key",
        "safety_identifier",
    }
)


@dataclass(frozen=True, slots=True)
class Sampling:
    n: int
    logprobs: bool
    top_logprobs: int


def unknown_field(name: str) -> OpenAIError:
    """OpenAI's answer to a top-level field it does not know (its ``param`` is null)."""
    return OpenAIError(400, f"Unrecognized request argument supplied: {name}")


def read_sampling(data: Mapping[str, object]) -> Sampling:
    """``n``, ``logprobs`` and ``top_logprobs``, within OpenAI's bounds."""
    n = _bounded(data, "n", 1, MAX_N, default=1)
    logprobs = data.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise invalid_type("logprobs", "a boolean", logprobs)
    top = data.get("top_logprobs")
    if top is not None and not logprobs:
        raise OpenAIError(
            400,
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when "
            "'top_logprobs' is used.",
            param="top_logprobs",
            code="invalid_value",
        )
    top_logprobs = _bounded(data, "top_logprobs", 0, MAX_TOP_LOGPROBS, default=0)
    return Sampling(n, bool(logprobs), top_logprobs)


def _bounded(data: Mapping[str, object], name: str, low: int, high: int, *, default: int) -> int:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_type(name, "an integer", value)
    if value < low:
        raise OpenAIError(
            400,
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, but "
            f"got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    if value > high:
        raise OpenAIError(
            400,
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, but "
            f"got {value} instead.",
            param=name,
            code="integer_above_max_value",
        )
    return value


def read_stream(data: Mapping[str, object]) -> tuple[bool, bool]:
    stream = data.get("stream") or False
    if not isinstance(stream, bool):
        raise invalid_type("stream", "a boolean", stream)
    options = data.get("stream_options")
    if options is None:
        return stream, False
    if not stream:
        raise OpenAIError(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    if not isinstance(options, dict):
        raise invalid_type("stream_options", "an object", options)
    include_usage = options.get("include_usage") or False
    if not isinstance(include_usage, bool):
        raise invalid_type("stream_options.include_usage", "a boolean", include_usage)
    return stream, include_usage


REASONING_TOKENS = {"none": 0, "minimal": 8, "low": 16, "medium": 32, "high": 64, "xhigh": 128}
"""The emulated reasoning model's hidden reasoning per effort, counted in completion tokens as
OpenAI counts them (``completion_tokens_details.reasoning_tokens``); its text is never sent."""
_REASONING_MODELS = ("o1", "o3", "o4", "gpt-5")


def read_reasoning_effort(data: Mapping[str, object], model: str) -> str | None:
    """The effort, for the reasoning models (o-series, GPT-5, and any ``*reasoning*`` name);
    other models refuse the parameter, as OpenAI's do."""
    effort = data.get("reasoning_effort")
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in REASONING_TOKENS:
        raise invalid_value("reasoning_effort", str(effort), tuple(REASONING_TOKENS))
    if not (model.startswith(_REASONING_MODELS) or "reasoning" in model):
        raise OpenAIError(
            400,
            "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
            param="reasoning_effort",
            code="unsupported_parameter",
        )
    return effort


def read_max_tokens(data: Mapping[str, object]) -> int | None:
    limit: int | None = None
    for name in ("max_tokens", "max_completion_tokens"):
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid_type(name, "an integer", value)
        if value < 1:
            raise OpenAIError(
                400,
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, "
                f"but got {value} instead.",
                param=name,
                code="integer_below_min_value",
            )
        limit = value if limit is None else min(limit, value)
    return limit


def read_response_format(data: Mapping[str, object], texts: Sequence[str]) -> bool:
    spec = data.get("response_format")
    if spec is None:
        return False
    if not isinstance(spec, dict):
        raise invalid_type("response_format", "an object", spec)
    kind = required(spec, "type", "response_format")
    if kind not in RESPONSE_FORMATS:
        raise invalid_value("response_format.type", str(kind), RESPONSE_FORMATS)
    if kind == "json_schema" and not isinstance(spec.get("json_schema"), dict):
        raise missing("response_format.json_schema")
    if kind == "json_object" and not any("json" in text.lower() for text in texts):
        raise OpenAIError(
            400,
            "'messages' must contain the word 'json' in some form, to use 'response_format' "
            "of type 'json_object'.",
            param="messages",
        )
    return kind != "text"


def read_tools(data: Mapping[str, object]) -> str | None:
    tools, choice = data.get("tools"), data.get("tool_choice")
    if tools is None:
        if choice is not None:
            raise OpenAIError(
                400,
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                "are specified.",
                param="tool_choice",
            )
        return None
    if not isinstance(tools, list):
        raise invalid_type("tools", "an array", tools)
    if not tools:
        raise empty_array("tools")
    names = [_tool_name(i, tool) for i, tool in enumerate(tools)]
    if choice is None or choice in ("none", "auto"):
        return None
    if choice == "required":
        return names[0]
    if isinstance(choice, str):
        raise invalid_value("tool_choice", choice, TOOL_CHOICES)
    if not isinstance(choice, dict):
        raise invalid_type("tool_choice", "one of a string or object", choice)
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise missing("tool_choice.function.name")
    if name not in names:
        raise OpenAIError(
            400,
            f"Invalid value for 'tool_choice': no tool named '{name}' in 'tools'.",
            param="tool_choice",
            code="invalid_value",
        )
    return name


def _tool_name(i: int, tool: object) -> str:
    param = f"tools[{i}]"
    if not isinstance(tool, dict):
        raise invalid_type(param, "an object", tool)
    kind = required(tool, "type", param)
    if kind not in ("function", "custom"):
        raise invalid_value(f"{param}.type", str(kind), ("function", "custom"))
    spec = required(tool, str(kind), param)
    name = spec.get("name") if isinstance(spec, dict) else None
    if not isinstance(name, str):
        raise missing(f"{param}.{kind}.name")
    return name
