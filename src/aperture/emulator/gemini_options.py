"""Reading the settings of a Gemini request: ``generationConfig``, ``tools``, ``toolConfig``.

Field names are checked against the REST (lowerCamelCase) names; like Google's proto JSON
parser, the emulator also takes a field's proto (snake_case) name, which the google-genai SDK
sends for some nested fields. Unknown names are refused with Google's parser error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from aperture.emulator.gemini_errors import GoogleError, invalid, invalid_value, unknown_name

__all__ = [
    "GENERATION_FIELDS",
    "MEDIA_RESOLUTIONS",
    "SCHEMA_FIELDS",
    "Settings",
    "ToolChoice",
    "read_fields",
    "read_generation_config",
    "read_tools",
]

GENERATION_FIELDS = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "mediaResolution",
        "imageConfig",
    }
)
SCHEMA_FIELDS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
SCHEMA_TYPES = frozenset(
    {"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
)
MODALITIES = frozenset({"MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO"})
"""google.ai.generativelanguage GenerationConfig.Modality."""
MEDIA_RESOLUTIONS = frozenset(
    {
        "MEDIA_RESOLUTION_UNSPECIFIED",
        "MEDIA_RESOLUTION_LOW",
        "MEDIA_RESOLUTION_MEDIUM",
        "MEDIA_RESOLUTION_HIGH",
    }
)
RESPONSE_MIME_TYPES = frozenset({"text/plain", "application/json", "text/x.enum"})
MAX_STOP_SEQUENCES = 5
TOOL_FIELDS = frozenset(
    {
        "functionDeclarations",
        "googleSearch",
        "googleSearchRetrieval",
        "codeExecution",
        "urlContext",
        "fileSearch",
        "googleMaps",
        "computerUse",
    }
)
DECLARATION_FIELDS = frozenset(
    {"name", "description", "parameters", "parametersJsonSchema", "response", "behavior"}
    | {"responseJsonSchema"}
)
MODES = frozenset({"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"})
FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")


@dataclass(frozen=True, slots=True)
class Settings:
    max_output_tokens: int | None = None
    stop_sequences: tuple[str, ...] = ()
    json_mode: bool = False
    candidate_count: int = 1
    media_resolution: str | None = None
    modalities: tuple[str, ...] = ()
    """``responseModalities`` as sent (``TEXT``, ``IMAGE``, ``AUDIO``); empty when unset."""
    logprobs: int | None = None
    """With ``responseLogprobs``: how many top candidates each step lists (``logprobs``)."""
    thinking_config: object = None
    """``thinkingConfig`` as sent, judged with the model (``gemini_thinking``)."""


@dataclass(frozen=True, slots=True)
class ToolChoice:
    forced: str | None
    """The function a ``mode: ANY`` answer calls (the first allowed, else the first declared)."""


def read_fields(
    data: Mapping[str, object], allowed: frozenset[str], path: str
) -> dict[str, object]:
    """``data`` with every field under its lowerCamelCase name; unknown names are refused.

    Google's proto JSON parser takes a field's proto name (``mime_type``) as well as its JSON
    name (``mimeType``), and the google-genai SDK itself sends some nested fields snake_case.
    """
    out: dict[str, object] = {}
    for key, value in data.items():
        name = _camel(key)
        if name not in allowed:
            raise unknown_name(key, path)
        if name in out:
            message = f'Invalid JSON payload received. Duplicate field "{name}".'
            raise GoogleError(400, message)
        out[name] = value
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(piece[:1].upper() + piece[1:] for piece in rest)


def _object(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise invalid_value(path, "TYPE_MESSAGE", value)
    return value


def _int(value: object, path: str, kind: str = "TYPE_INT32") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_value(path, kind, value)
    return value


def _number(config: Mapping[str, object], key: str, low: float, high: float | None) -> None:
    value = config.get(key)
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise invalid_value(f"generationConfig.{key}", "TYPE_FLOAT", value)
    if value < low or (high is not None and value > high):
        upper = f"{high:.1f}" if high is not None else "inf"
        raise invalid(
            f"* GenerateContentRequest.generation_config.{_snake(key)}: must be in the range "
            f"[{low:.1f}, {upper}]\n"
        )


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z])([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def read_generation_config(value: object) -> Settings:
    if value is None:
        return Settings()
    config = _object(value, "generationConfig")
    config = read_fields(config, GENERATION_FIELDS, "generationConfig")
    _number(config, "temperature", 0.0, 2.0)
    _number(config, "topP", 0.0, 1.0)
    for key in ("presencePenalty", "frequencyPenalty"):
        _number(config, key, -2.0, 2.0)
    for key in ("topK", "seed"):
        if key in config:
            _int(config[key], f"generationConfig.{key}")
    max_tokens = config.get("maxOutputTokens")
    if max_tokens is not None:
        max_tokens = _int(max_tokens, "generationConfig.maxOutputTokens")
    count = _int(config.get("candidateCount", 1), "generationConfig.candidateCount")
    if not 1 <= count <= 8:
        raise invalid(
            "* GenerateContentRequest.generation_config.candidate_count: must be in the "
            "range [1, 8]\n"
        )
    return Settings(
        logprobs=_logprobs(config),
        max_output_tokens=max_tokens,
        stop_sequences=_stop_sequences(config.get("stopSequences")),
        json_mode=_response_format(config),
        candidate_count=count,
        media_resolution=_media_resolution(config.get("mediaResolution")),
        modalities=_modalities(config.get("responseModalities")),
        thinking_config=config.get("thinkingConfig"),
    )


MAX_LOGPROBS = 20


def _logprobs(config: Mapping[str, object]) -> int | None:
    """``responseLogprobs`` and ``logprobs`` (0..20, only with ``responseLogprobs``)."""
    wanted = config.get("responseLogprobs")
    if wanted is not None and not isinstance(wanted, bool):
        raise invalid_value("generationConfig.responseLogprobs", "TYPE_BOOL", wanted)
    top = config.get("logprobs")
    if top is None:
        return 0 if wanted else None
    top = _int(top, "generationConfig.logprobs")
    if not 0 <= top <= MAX_LOGPROBS:
        raise invalid(
            "* GenerateContentRequest.generation_config.logprobs: must be in the range "
            f"[0, {MAX_LOGPROBS}]\n"
        )
    if not wanted:
        raise invalid("logprobs can only be set when response_logprobs is true.")
    return top


def _modalities(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid_value("generationConfig.responseModalities", "TYPE_ENUM", value)
    for k, item in enumerate(value):
        if item not in MODALITIES:
            raise invalid_value(f"generationConfig.responseModalities[{k}]", "TYPE_ENUM", item)
    return tuple(str(item) for item in value)


def _stop_sequences(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid_value("generationConfig.stopSequences", "TYPE_STRING", value)
    for k, item in enumerate(value):
        if not isinstance(item, str):
            raise invalid_value(f"generationConfig.stopSequences[{k}]", "TYPE_STRING", item)
    if len(value) > MAX_STOP_SEQUENCES:
        raise invalid(
            "* GenerateContentRequest.generation_config.stop_sequences: the number of "
            f"stop_sequences must not exceed {MAX_STOP_SEQUENCES}\n"
        )
    return tuple(value)


def _response_format(config: Mapping[str, object]) -> bool:
    mime = config.get("responseMimeType", "text/plain")
    if not isinstance(mime, str):
        raise invalid_value("generationConfig.responseMimeType", "TYPE_STRING", mime)
    if mime not in RESPONSE_MIME_TYPES:
        allowed = ", ".join(sorted(RESPONSE_MIME_TYPES))
        raise invalid(
            "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes "
            f"are {allowed}.\n"
        )
    schema, json_schema = config.get("responseSchema"), config.get("responseJsonSchema")
    if schema is not None and json_schema is not None:
        raise invalid(
            "* GenerateContentRequest.generation_config: response_schema and "
            "response_json_schema cannot both be set.\n"
        )
    if (schema is not None or json_schema is not None) and mime == "text/plain":
        raise invalid(
            "* GenerateContentRequest.generation_config.response_mime_type: must be "
            "application/json or text/x.enum when a response schema is set.\n"
        )
    if schema is not None:
        check_schema(schema, "generationConfig.responseSchema")
    elif json_schema is not None:
        _object(json_schema, "generationConfig.responseJsonSchema")
    return mime == "application/json"


def _media_resolution(value: object) -> str | None:
    if value is None:
        return None
    if value not in MEDIA_RESOLUTIONS:
        raise invalid_value("generationConfig.mediaResolution", "TYPE_ENUM", value)
    return str(value)


def check_schema(value: object, path: str) -> None:
    """A ``Schema`` object: known fields, a known type, and properties on every object."""
    schema = _object(value, path)
    schema = read_fields(schema, SCHEMA_FIELDS, path)
    kind = schema.get("type")
    if kind is not None and (not isinstance(kind, str) or kind.upper() not in SCHEMA_TYPES):
        raise invalid_value(f"{path}.type", "TYPE_ENUM", kind)
    if isinstance(kind, str) and kind.upper() == "OBJECT" and not schema.get("properties"):
        raise invalid(
            f"* GenerateContentRequest.{_proto(path)}.properties: should be non-empty for "
            "OBJECT type\n"
        )
    properties = schema.get("properties")
    if properties is not None:
        for name, sub in _object(properties, f"{path}.properties").items():
            check_schema(sub, f"{path}.properties[{name}].value")
    if "items" in schema:
        check_schema(schema["items"], f"{path}.items")
    variants = schema.get("anyOf")
    if variants is not None:
        if not isinstance(variants, list):
            raise invalid_value(f"{path}.anyOf", "TYPE_MESSAGE", variants)
        for k, sub in enumerate(variants):
            check_schema(sub, f"{path}.anyOf[{k}]")


def _proto(path: str) -> str:
    return ".".join(_snake(piece) for piece in path.split("."))


def read_tools(tools: object, tool_config: object) -> ToolChoice:
    names = _declared_names(tools) if tools is not None else []
    if tool_config is None:
        return ToolChoice(None)
    config = _object(tool_config, "toolConfig")
    config = read_fields(
        config, frozenset({"functionCallingConfig", "retrievalConfig"}), "toolConfig"
    )
    calling = config.get("functionCallingConfig")
    if calling is None:
        return ToolChoice(None)
    calling = _object(calling, "toolConfig.functionCallingConfig")
    path = "toolConfig.functionCallingConfig"
    calling = read_fields(calling, frozenset({"mode", "allowedFunctionNames"}), path)
    mode = calling.get("mode", "AUTO")
    if mode not in MODES:
        raise invalid_value(f"{path}.mode", "TYPE_ENUM", mode)
    allowed = calling.get("allowedFunctionNames")
    if allowed is not None:
        if not isinstance(allowed, list) or not all(isinstance(n, str) for n in allowed):
            raise invalid_value(f"{path}.allowedFunctionNames", "TYPE_STRING", allowed)
        if mode not in ("ANY", "VALIDATED"):
            raise invalid(
                "* GenerateContentRequest.tool_config.function_calling_config."
                "allowed_function_names: only allowed when mode is ANY or VALIDATED.\n"
            )
        for name in allowed:
            if name not in names:
                raise invalid(
                    "* GenerateContentRequest.tool_config.function_calling_config."
                    f"allowed_function_names: function {name} is not declared.\n"
                )
    if mode != "ANY" or not names:
        return ToolChoice(None)
    return ToolChoice(allowed[0] if allowed else names[0])


def _declared_names(tools: object) -> list[str]:
    if not isinstance(tools, list):
        raise invalid_value("tools", "TYPE_MESSAGE", tools)
    names: list[str] = []
    for t, tool in enumerate(tools):
        path = f"tools[{t}]"
        spec = _object(tool, path)
        spec = read_fields(spec, TOOL_FIELDS, path)
        declarations = spec.get("functionDeclarations", [])
        if not isinstance(declarations, list):
            raise invalid_value(f"{path}.functionDeclarations", "TYPE_MESSAGE", declarations)
        for d, declaration in enumerate(declarations):
            names.append(_declaration(declaration, f"{path}.functionDeclarations[{d}]"))
    return names


def _declaration(value: object, path: str) -> str:
    declaration = _object(value, path)
    declaration = read_fields(declaration, DECLARATION_FIELDS, path)
    name = declaration.get("name")
    if not isinstance(name, str) or not FUNCTION_NAME.fullmatch(name):
        raise invalid(
            f"* GenerateContentRequest.{_proto(path)}.name: Invalid function name. Must start "
            "with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores "
            "(_), dots (.), colons (:) or dashes (-), with a maximum length of 64.\n"
        )
    description = declaration.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid_value(f"{path}.description", "TYPE_STRING", description)
    if "parameters" in declaration and "parametersJsonSchema" in declaration:
        raise GoogleError(
            400,
            f"* GenerateContentRequest.{_proto(path)}: parameters and parameters_json_schema "
            "are mutually exclusive.\n",
        )
    if "parameters" in declaration:
        check_schema(declaration["parameters"], f"{path}.parameters")
    elif "parametersJsonSchema" in declaration:
        _object(declaration["parametersJsonSchema"], f"{path}.parametersJsonSchema")
    return name
