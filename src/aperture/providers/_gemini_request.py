"""The body of a Gemini ``generateContent`` request, from the canonical request.

Translation choices, in one place:

- ``system``/``developer`` messages become ``systemInstruction`` (one text part each, text
  only); ``assistant`` becomes role ``model``; ``tool`` messages become ``functionResponse``
  parts in a ``user`` turn. Consecutive turns of one role are merged (Gemini wants user/model
  alternation, and all the answers to one step's parallel calls in one turn, first).
- Gemini's function calls carry no id the OpenAI way does. Ids are made up on the way out
  (``tool_call_id``: ``call_<index>_<name>``, at most 40 characters of ``[A-Za-z0-9_-]`` so
  the history stays valid for OpenAI or Anthropic after a failover). A tool message names
  only ``tool_call_id``, so its function name is looked up in the nearest earlier assistant
  message holding a call with that id (ids repeat across turns; the nearest one is the call
  being answered); the legacy ``name`` field is the fallback.
- An assistant message's signed thought (the ``thoughtSignature`` Gemini gave the answer,
  kept as canonical reasoning) goes back on its first ``functionCall`` part, else on its
  first text part, where Gemini put it. A model turn's first ``functionCall`` without a real
  signature carries Google's documented placeholder (``SKIP_THOUGHT_SIGNATURE``): Gemini 3
  refuses a function call in history without one. Thought summaries are not sent back.
- Canonical ``reasoning`` becomes ``generationConfig.thinkingConfig``: its budget
  (``aperture.model.reasoning``: an effort as its documented budget) as ``thinkingBudget``
  with ``includeThoughts``; no budget nor effort (Anthropic's ``adaptive``) is ``-1``, Gemini's
  dynamic thinking; "disabled" is ``thinkingBudget: 0``.
- A tool result that is a JSON object is sent as the ``response`` itself (a function that
  failed can say ``{"error": ...}``); anything else is wrapped as ``{"output": ...}``.
  Images in a tool result follow its ``functionResponse`` as ``inlineData`` parts.
- Images the gateway holds go as ``inlineData`` with bare base64 and the sniffed type; URL
  images go as ``fileData`` (Gemini fetches public HTTPS URLs since January 2026), with the
  type guessed from the file extension or left out. ``detail`` maps to the request-level
  ``generationConfig.mediaResolution`` (per-part resolution is v1alpha-only, providers.md
  §5.4): HIGH if any image asks for ``high``, LOW if every image asks for ``low``, unset
  otherwise. Empty text parts are dropped: Gemini refuses them.
- ``response_format`` ``json_object`` sets ``responseMimeType: application/json``;
  ``json_schema`` adds ``responseSchema`` when the schema converts (``_gemini_schema``), else
  ``responseJsonSchema``. Tool parameters likewise use ``parameters`` or
  ``parametersJsonSchema``.
- ``tool_choice`` maps to ``functionCallingConfig.mode`` (auto → AUTO, none → NONE,
  required → ANY, a named tool → ANY with ``allowedFunctionNames``). ``n`` becomes
  ``candidateCount``. ``user`` and ``parallel_tool_calls`` have no Gemini equivalent and are
  dropped.
- ``modalities`` (OpenAI's, kept in ``extra``) asking for ``image`` sets
  ``generationConfig.responseModalities`` to ``["TEXT", "IMAGE"]`` (``["IMAGE"]`` when the
  client asked for images alone), which Gemini's image models answer with ``inlineData``
  image parts.
- ``extra`` (top-level fields the client dialect does not model) is NOT forwarded: those are
  OpenAI-dialect extras, and Gemini answers unknown fields with a 400 INVALID_ARGUMENT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec

from aperture.errors import (
    InvalidRequestError,
    UnsupportedCapabilityError,
    UnsupportedImageFormatError,
)
from aperture.media.datauri import MIME_ALIASES, parse_data_uri
from aperture.model import (
    Audio,
    ChatRequest,
    File,
    Image,
    Message,
    NamedToolChoice,
    Part,
    ResponseFormat,
    Text,
    Tool,
    Video,
)
from aperture.providers._gemini_schema import to_gemini_schema
from aperture.providers._gemini_spec import GEMINI_IMAGE_TYPES
from aperture.providers._json_body import verbatim

__all__ = ["IMAGE_MIME_TYPES", "SKIP_THOUGHT_SIGNATURE", "build_body", "tool_call_id"]

IMAGE_MIME_TYPES = GEMINI_IMAGE_TYPES
SKIP_THOUGHT_SIGNATURE = "skip_thought_signature_validator"
"""Google's placeholder for a function call whose real signature is unknown
(ai.google.dev/gemini-api/docs/thought-signatures, FAQ): base64-valid, accepted by Gemini 3."""

_MAX_ID = 40  # OpenAI's limit on a tool call id
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")
_EXTENSIONS = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
}
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def tool_call_id(index: int, name: str) -> str:
    """The id a Gemini function call gets: ``call_<index>_<name>``, made safe and short."""
    return f"call_{index}_{_UNSAFE_ID.sub('_', name)}"[:_MAX_ID]


@dataclass(slots=True)
class _Turn:
    role: str
    parts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Builder:
    system: list[dict[str, Any]] = field(default_factory=list)
    turns: list[_Turn] = field(default_factory=list)
    details: list[str | None] = field(default_factory=list)
    call_names: dict[str, str] = field(default_factory=dict)
    """Tool call id -> function name, as of the message being translated."""

    def add(self, role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if self.turns and self.turns[-1].role == role:
            self.turns[-1].parts.extend(parts)
        else:
            self.turns.append(_Turn(role, parts))


def build_body(request: ChatRequest) -> dict[str, Any]:
    """The JSON body for ``request`` (the URL, which depends on ``stream``, is the caller's)."""
    task = request.image_task
    if task is not None and task.mask:
        raise UnsupportedCapabilityError(
            "Gemini image models edit from the prompt and take no mask; leave the mask out.",
            param="mask",
        )
    builder = _Builder()
    for i, message in enumerate(request.messages):
        _message(builder, message, i)
    if not builder.turns:
        raise InvalidRequestError(
            "Gemini needs at least one user or assistant message with content.",
            param="messages",
        )
    contents = []
    for turn in builder.turns:
        if turn.role == "user":
            # Stable: a step's function responses first, then anything the user added.
            turn.parts.sort(key=lambda part: "functionResponse" not in part)
        else:
            _sign_first_call(turn.parts)
        contents.append({"role": turn.role, "parts": turn.parts})
    body: dict[str, Any] = {"contents": contents}
    if builder.system:
        body["systemInstruction"] = {"parts": builder.system}
    config = _generation_config(request, builder.details)
    if config:
        body["generationConfig"] = config
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t) for t in request.tools]}]
        tool_config = _tool_config(request)
        if tool_config is not None:
            body["toolConfig"] = tool_config
    # request.extra is deliberately not forwarded (OpenAI-dialect extras; see module doc).
    return body


def _message(builder: _Builder, message: Message, i: int) -> None:
    at = f"messages[{i}]"
    match message.role:
        case "system" | "developer":
            for j, part in enumerate(message.parts()):
                if not isinstance(part, Text):
                    raise InvalidRequestError(
                        f"{message.role.capitalize()} messages may only hold text for Gemini.",
                        param=f"{at}.content[{j}]",
                    )
                if part.text:
                    builder.system.append({"text": part.text})
        case "assistant":
            parts = _parts(builder, message.parts(), at)
            for k, call in enumerate(message.tool_calls or ()):
                builder.call_names[call.id] = call.name
                args = _arguments(call.arguments, f"{at}.tool_calls[{k}].function.arguments")
                parts.append({"functionCall": {"name": call.name, "args": args}})
            _sign(parts, message)
            builder.add("model", parts)
        case "tool":
            builder.add("user", _tool_result(builder, message, at))
        case _:
            builder.add("user", _parts(builder, message.parts(), at))


def _sign(parts: list[dict[str, Any]], message: Message) -> None:
    signature = next((t.signature for t in message.reasoning or () if t.signature), None)
    if signature is None:
        return
    calls = [part for part in parts if "functionCall" in part]
    texts = [part for part in parts if "text" in part]
    for part in (calls or texts)[:1]:
        part["thoughtSignature"] = signature


def _sign_first_call(parts: list[dict[str, Any]]) -> None:
    for part in parts:
        if "functionCall" in part:
            part.setdefault("thoughtSignature", SKIP_THOUGHT_SIGNATURE)
            return


def _tool_result(builder: _Builder, message: Message, at: str) -> list[dict[str, Any]]:
    call_id = message.tool_call_id
    name = builder.call_names.get(call_id) if call_id is not None else None
    name = name or message.name
    if name is None:
        raise InvalidRequestError(
            "Gemini needs the function name of each tool result: its tool_call_id must match "
            "a tool call of an earlier assistant message.",
            param=f"{at}.tool_call_id",
        )
    content = message.content
    texts = [content] if isinstance(content, str) else []
    others: list[Part] = []
    for part in () if isinstance(content, str | None) else content:
        if isinstance(part, Text):
            texts.append(part.text)
        else:
            others.append(part)
    response = {"name": name, "response": _response_object("".join(texts))}
    return [{"functionResponse": response}, *_parts(builder, tuple(others), at)]


def _response_object(text: str) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(text) if text.strip() else text
    except msgspec.DecodeError:
        value = text
    return value if isinstance(value, dict) else {"output": value}


def _arguments(arguments: str, param: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}  # a call without arguments; Gemini's args is still an object
    try:
        value = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        raise InvalidRequestError(
            "Tool call arguments must be valid JSON to send them to Gemini.", param=param
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            "Tool call arguments must be a JSON object to send them to Gemini.", param=param
        )
    return value


def _parts(builder: _Builder, parts: tuple[Part, ...], at: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        param = f"{at}.content[{j}]"
        match part:
            case Text(text=text):
                if text:  # Gemini refuses empty text parts
                    out.append({"text": text})
            case Image():
                builder.details.append(part.detail)
                out.append(_image(part, param))
            case Audio(data=data, format=fmt):
                mime = _AUDIO_TYPES.get(fmt.lower(), f"audio/{fmt.lower()}")
                out.append({"inlineData": {"mimeType": mime, "data": data}})
            case Video(url=url):
                out.append(_media_uri(url, None, f"{param}.video_url.url"))
            case File(file_data=data) if data is not None and data[:5].lower() == "data:":
                out.append(_media_uri(data, None, f"{param}.file.file_data"))
            case File():
                raise UnsupportedCapabilityError(
                    "Gemini accepts files only as data URIs in file_data.", param=param
                )
    return out


def _image(image: Image, param: str) -> dict[str, Any]:
    at = f"{param}.image_url.url"
    if image.inline is not None:
        mime = MIME_ALIASES.get(image.inline.mime, image.inline.mime)
        _check_image_type(mime, at)
        data = verbatim(image.url, image.inline.payload_offset)  # checked: written unscanned
        return {"inlineData": {"mimeType": mime, "data": data}}
    if image.is_data_uri:
        # Intake normally sets ``inline``; a bare data URI is still translated faithfully.
        uri = parse_data_uri(image.url, param=at)
        _check_image_type(uri.mime, at)
        return {"inlineData": {"mimeType": uri.mime, "data": image.url[uri.payload_offset :]}}
    path = urlsplit(image.url).path.lower()
    guessed = next((m for ext, m in _EXTENSIONS.items() if path.endswith(ext)), None)
    return _media_uri(image.url, guessed, at)


def _media_uri(url: str, mime: str | None, param: str) -> dict[str, Any]:
    if url[:5].lower() == "data:":
        uri = parse_data_uri(url, param=param)
        return {"inlineData": {"mimeType": uri.mime, "data": url[uri.payload_offset :]}}
    data: dict[str, Any] = {"fileUri": url}
    if mime is not None:
        data["mimeType"] = mime
    return {"fileData": data}


def _check_image_type(mime: str, param: str) -> None:
    if mime not in IMAGE_MIME_TYPES:
        raise UnsupportedImageFormatError(
            f"Gemini accepts PNG, JPEG, WebP, HEIC and HEIF images, not {mime}.", param=param
        )


def _generation_config(request: ChatRequest, details: list[str | None]) -> dict[str, Any]:
    config = _sampling(request)
    config.update(_response_format(request.response_format))
    modalities = request.modalities()
    if request.image_task is not None:
        # The Images API answers with images only.
        config["responseModalities"] = ["IMAGE"]
    elif "image" in modalities:
        config["responseModalities"] = ["TEXT", "IMAGE"] if "text" in modalities else ["IMAGE"]
    thinking = _thinking(request)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    if "high" in details:
        config["mediaResolution"] = "MEDIA_RESOLUTION_HIGH"
    elif details and all(detail == "low" for detail in details):
        config["mediaResolution"] = "MEDIA_RESOLUTION_LOW"
    return config


def _sampling(request: ChatRequest) -> dict[str, Any]:
    """Length, sampling, choices and log probabilities, under Gemini's names."""
    config: dict[str, Any] = {}
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    for name, key in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        value = getattr(request, name)
        if value is not None:
            config[key] = value
    if request.n is not None and request.n > 1:
        config["candidateCount"] = request.n
    if request.logprobs:
        config["responseLogprobs"] = True
        if request.top_logprobs is not None:
            config["logprobs"] = request.top_logprobs
    if request.stop:
        config["stopSequences"] = list(request.stop)
    return config


def _thinking(request: ChatRequest) -> dict[str, Any] | None:
    reasoning = request.reasoning
    if reasoning is None:
        return None
    if not reasoning.enabled:
        return {"thinkingBudget": 0}
    dynamic = reasoning.budget_tokens is None and reasoning.effort is None
    return {"thinkingBudget": -1 if dynamic else reasoning.budget, "includeThoughts": True}


def _response_format(response_format: ResponseFormat | None) -> dict[str, Any]:
    if response_format is None or response_format.type == "text":
        return {}
    config: dict[str, Any] = {"responseMimeType": "application/json"}
    spec = response_format.json_schema
    if response_format.type == "json_schema" and spec:
        # OpenAI wraps the schema as {"name", "schema", "strict"}; tolerate a bare schema.
        inner = spec.get("schema")
        schema = inner if isinstance(inner, dict) else spec
        converted = to_gemini_schema(schema)
        if converted is not None:
            config["responseSchema"] = converted
        else:
            config["responseJsonSchema"] = schema
    return config


def _declaration(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    schema = tool.parameters
    if not schema:
        return out  # "For function with no parameters, this can be left unset."
    converted = to_gemini_schema(schema, allow_empty_object=True)
    if converted is None:
        out["parametersJsonSchema"] = schema
    elif converted.get("properties"):
        out["parameters"] = converted
    return out


def _tool_config(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if isinstance(choice, NamedToolChoice):
        config: dict[str, Any] = {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    else:
        config = {"mode": _TOOL_MODES[choice]}
    return {"functionCallingConfig": config}
