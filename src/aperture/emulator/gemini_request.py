"""Reading a ``generateContent`` body the way Gemini does: contents, parts and images.

Unknown fields are refused (``Invalid JSON payload received. Unknown name ...``), as Google's
parser does, so a gateway that leaks OpenAI-only fields upstream fails here as it would in
production; like that parser, proto (snake_case) spellings of known fields are accepted.
Images must be bare base64 (standard or URL-safe, as proto3 JSON allows) of a type Gemini
lists (PNG, JPEG, WebP, HEIC, HEIF: not GIF) that matches the bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import msgspec
import pybase64

from aperture.emulator.describe import Seen, SeenImage
from aperture.emulator.gemini_errors import (
    GoogleError,
    field_violation,
    invalid,
    invalid_value,
    proto_path,
)
from aperture.emulator.gemini_options import (
    MEDIA_RESOLUTIONS,
    Settings,
    read_fields,
    read_generation_config,
    read_tools,
)
from aperture.emulator.gemini_thinking import Thinking, check_signature, read_thinking
from aperture.emulator.images import ImageRejected, inspect_base64

__all__ = [
    "IMAGE_MIME_TYPES",
    "REQUEST_FIELDS",
    "GenerateRequest",
    "image_tokens",
    "is_image_model",
    "parse_generate_request",
]

IMAGE_MIME_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
REQUEST_FIELDS = frozenset(
    {
        "model",
        "contents",
        "systemInstruction",
        "generationConfig",
        "tools",
        "toolConfig",
        "safetySettings",
        "cachedContent",
    }
)
DATA_FIELDS = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)
PART_FIELDS = frozenset(
    {*DATA_FIELDS, "thought", "thoughtSignature", "videoMetadata", "mediaResolution"}
    | {"partMetadata"}
)
ROLES = ("user", "model")
IMAGE_TOKENS = 258
"""Gemini 2.x: an image up to 384x384 costs 258 tokens; larger ones 258 per 768x768 tile."""
LOW_RESOLUTION_TOKENS = 64
"""``MEDIA_RESOLUTION_LOW``, as the SDK documents it for pre-Gemini-3 models."""
_DETAILS = {
    "MEDIA_RESOLUTION_LOW": "low",
    "MEDIA_RESOLUTION_MEDIUM": "medium",
    "MEDIA_RESOLUTION_HIGH": "high",
    "MEDIA_RESOLUTION_ULTRA_HIGH": "ultra_high",
}
_HEIF_FAMILY = frozenset({"image/heic", "image/heif"})
EMPTY_TEXT = (
    "Unable to submit request because it has an empty text parameter. Add a value to the "
    "parameter and try again."
)
INVALID_IMAGE = "Provided image is not valid."


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    seen: Seen
    prompt_tokens: int
    image_tokens: int
    settings: Settings
    tool_name: str | None
    """Set when ``toolConfig`` forces a call (``mode: ANY``): the function the answer calls."""
    draws: bool = False
    """An image model asked (or by default) to answer with an image as well."""
    text_out: bool = True
    """Whether the answer holds text: not when ``responseModalities`` is ``["IMAGE"]``."""
    thinking: Thinking = field(default_factory=Thinking)


def is_image_model(model: str) -> bool:
    """Gemini's image models (``gemini-2.5-flash-image``, ``gemini-3-pro-image-preview``...)."""
    return "-image" in model.lower()


@dataclass(slots=True)
class _Collector:
    resolution: str | None
    images: list[SeenImage] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    system: list[str] = field(default_factory=list)
    asked: str = ""


def image_tokens(image: SeenImage) -> int:
    if image.detail == "low":
        return LOW_RESOLUTION_TOKENS
    if image.is_url:
        return IMAGE_TOKENS  # never fetched, size unknown: one tile
    if image.width <= 384 and image.height <= 384:
        return IMAGE_TOKENS
    return IMAGE_TOKENS * math.ceil(image.width / 768) * math.ceil(image.height / 768)


def parse_generate_request(body: bytes, model: str) -> GenerateRequest:
    """Validate a request body sent to ``models/<model>``.

    Raises:
        GoogleError: what Gemini would answer for the same body.
    """
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise GoogleError(
            400, "Invalid JSON payload received. Unexpected token.", details=[]
        ) from None
    if not isinstance(data, dict):
        raise invalid_value("", "TYPE_MESSAGE", data)
    data = read_fields(data, REQUEST_FIELDS, "")
    settings = read_generation_config(data.get("generationConfig"))
    collector = _Collector(resolution=settings.media_resolution)
    _read_system(collector, data.get("systemInstruction"))
    contents = data.get("contents")
    if not contents:
        raise invalid("* GenerateContentRequest.contents: contents is not specified\n")
    if not isinstance(contents, list):
        raise invalid_value("contents", "TYPE_MESSAGE", contents)
    for i, content in enumerate(contents):
        _read_content(collector, i, content)
    if collector.images and "text" in model.lower():
        raise invalid(f"Image input modality is not enabled for models/{model}")
    tool_name = read_tools(data.get("tools"), data.get("toolConfig")).forced
    modalities = settings.modalities
    if "AUDIO" in modalities or ("IMAGE" in modalities and not is_image_model(model)):
        asked = "audio" if "AUDIO" in modalities else "image"
        raise invalid(f"Model does not support the requested response modalities: {asked}")
    # An image model answers with text and an image unless told otherwise.
    draws = is_image_model(model) and (not modalities or "IMAGE" in modalities)
    seen = Seen(
        images=tuple(collector.images),
        asked=collector.asked,
        system=" ".join(collector.system) if collector.system else None,
        text_chars=sum(len(text) for text in collector.texts),
    )
    images = sum(image_tokens(image) for image in seen.images)
    return GenerateRequest(
        seen=seen,
        prompt_tokens=math.ceil(seen.text_chars / 4) + images,
        image_tokens=images,
        settings=settings,
        tool_name=tool_name,
        draws=draws and tool_name is None,
        text_out=not modalities or "TEXT" in modalities or not draws,
        thinking=read_thinking(settings.thinking_config, model),
    )


def _read_system(collector: _Collector, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise invalid_value("systemInstruction", "TYPE_MESSAGE", value)
    value = read_fields(value, frozenset({"role", "parts"}), "systemInstruction")
    parts = value.get("parts")
    if not isinstance(parts, list) or not parts:
        raise invalid(
            "* GenerateContentRequest.system_instruction.parts: contents.parts must not be empty.\n"
        )
    for j, part in enumerate(parts):
        path = f"systemInstruction.parts[{j}]"
        kind, spec = _part(part, path)
        if kind != "text":
            raise invalid(f"* GenerateContentRequest.{proto_path(path)}: only text is supported.\n")
        text = _text(spec, path)
        collector.texts.append(text)
        collector.system.append(text)


def _read_content(collector: _Collector, i: int, value: object) -> None:
    path = f"contents[{i}]"
    if not isinstance(value, dict):
        raise invalid_value(path, "TYPE_MESSAGE", value)
    value = read_fields(value, frozenset({"role", "parts"}), path)
    role = value.get("role", "")
    if role not in (*ROLES, ""):
        raise invalid("Please use a valid role: user, model.")
    parts = value.get("parts")
    if not parts:
        raise invalid(f"* GenerateContentRequest.{path}.parts: contents.parts must not be empty.\n")
    if not isinstance(parts, list):
        raise invalid_value(f"{path}.parts", "TYPE_MESSAGE", parts)
    texts: list[str] = []
    for j, part in enumerate(parts):
        at = f"{path}.parts[{j}]"
        kind, spec = _part(part, at)
        if role == "model":
            check_signature(spec, at)
        _read_part(collector, kind, spec, at, role, texts)
    collector.texts.extend(texts)
    if role != "model" and texts:
        collector.asked = " ".join(texts)


def _read_part(
    collector: _Collector,
    kind: str,
    spec: Mapping[str, object],
    at: str,
    role: object,
    texts: list[str],
) -> None:
    if kind == "text" and spec.get("thought") is not True:
        # A thought summary sent back is not part of the prompt.
        texts.append(_text(spec, at))
    elif kind == "inlineData":
        _inline(collector, spec, at)
    elif kind == "fileData":
        _file(collector, spec, at)
    elif kind == "functionCall":
        _function(spec, f"{at}.functionCall", "args", role == "model")
    elif kind == "functionResponse":
        _function(spec, f"{at}.functionResponse", "response", role != "model")
        collector.texts.append(msgspec.json.encode(spec.get("response")).decode())


def _part(value: object, path: str) -> tuple[str, dict[str, object]]:
    """The part's one data field, checked, and the part itself."""
    if not isinstance(value, dict):
        raise invalid_value(path, "TYPE_MESSAGE", value)
    value = read_fields(value, PART_FIELDS, path)
    kinds = [key for key in DATA_FIELDS if key in value]
    if not kinds:
        raise invalid(
            f"* GenerateContentRequest.{proto_path(path)}.data: required oneof field 'data' "
            "must have one initialized field\n"
        )
    if len(kinds) > 1:
        message = (
            "Invalid JSON payload received. Oneof field 'data' is already set. Cannot set "
            f"'{kinds[1]}'"
        )
        raise GoogleError(400, message, details=[field_violation(path, message)])
    signature = value.get("thoughtSignature")
    if signature is not None and not _is_base64(signature):
        raise _bad_bytes(f"{path}.thoughtSignature", signature)
    resolution = value.get("mediaResolution")
    if resolution is not None:
        level = resolution.get("level") if isinstance(resolution, dict) else None
        if level not in MEDIA_RESOLUTIONS | {"MEDIA_RESOLUTION_ULTRA_HIGH"}:
            raise invalid_value(f"{path}.mediaResolution.level", "TYPE_ENUM", level)
    return kinds[0], value


def _text(part: Mapping[str, object], path: str) -> str:
    text = part["text"]
    if not isinstance(text, str):
        raise invalid_value(f"{path}.text", "TYPE_STRING", text)
    if not text:
        raise invalid(EMPTY_TEXT)
    return text


def _function(part: Mapping[str, object], path: str, payload: str, allowed: bool) -> None:
    spec = part[path.rpartition(".")[2]]
    if not isinstance(spec, dict):
        raise invalid_value(path, "TYPE_MESSAGE", spec)
    spec = read_fields(spec, frozenset({"id", "name", payload}), path)
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise invalid(f"* GenerateContentRequest.{proto_path(path)}.name: name is not specified.\n")
    if payload in spec and not isinstance(spec[payload], dict):
        raise invalid_value(f"{path}.{payload}", "TYPE_MESSAGE", spec[payload])
    if payload == "response" and payload not in spec:
        raise invalid(
            f"* GenerateContentRequest.{proto_path(path)}.response: response is not specified.\n"
        )
    if not allowed:
        owner = "model" if payload == "args" else "user"
        raise invalid(
            f"* GenerateContentRequest.{proto_path(path)}: only a {owner} turn can hold it.\n"
        )


def _inline(collector: _Collector, part: Mapping[str, object], path: str) -> None:
    at = f"{path}.inlineData"
    blob = part["inlineData"]
    if not isinstance(blob, dict):
        raise invalid_value(at, "TYPE_MESSAGE", blob)
    blob = read_fields(blob, frozenset({"mimeType", "data"}), at)
    mime, data = blob.get("mimeType"), blob.get("data")
    if not isinstance(mime, str) or not mime:
        raise invalid(f"* GenerateContentRequest.{proto_path(at)}.mime_type: required.\n")
    if not isinstance(data, str) or not data:
        raise invalid(f"* GenerateContentRequest.{proto_path(at)}.data: required.\n")
    if not _is_base64(data):
        raise _bad_bytes(f"{at}.data", data)
    if not mime.startswith("image/"):
        return  # audio, video, PDF: accepted, not described
    if mime not in IMAGE_MIME_TYPES:
        raise invalid(f"Unsupported MIME type: {mime}")
    detail = _detail(collector, part)
    try:
        image = inspect_base64(mime, _standard(data), detail=detail, accepted=IMAGE_MIME_TYPES)
    except ImageRejected:
        # HEIC and HEIF are one family: Gemini does not tell the brands apart.
        other = next(iter(_HEIF_FAMILY - {mime})) if mime in _HEIF_FAMILY else None
        if other is None:
            raise invalid(INVALID_IMAGE) from None
        try:
            image = inspect_base64(other, _standard(data), detail=detail, accepted=_HEIF_FAMILY)
        except ImageRejected:
            raise invalid(INVALID_IMAGE) from None
    collector.images.append(image)


def _file(collector: _Collector, part: Mapping[str, object], path: str) -> None:
    at = f"{path}.fileData"
    spec = part["fileData"]
    if not isinstance(spec, dict):
        raise invalid_value(at, "TYPE_MESSAGE", spec)
    spec = read_fields(spec, frozenset({"mimeType", "fileUri"}), at)
    uri, mime = spec.get("fileUri"), spec.get("mimeType")
    if not isinstance(uri, str) or not uri:
        raise invalid(f"* GenerateContentRequest.{proto_path(at)}.file_uri: required.\n")
    if mime is not None and not isinstance(mime, str):
        raise invalid_value(f"{at}.mimeType", "TYPE_STRING", mime)
    parts = urlsplit(uri)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise invalid(f"Invalid or unsupported file uri: {uri}")
    if isinstance(mime, str) and mime.startswith("image/") and mime not in IMAGE_MIME_TYPES:
        raise invalid(f"Unsupported MIME type: {mime}")
    if mime is None or mime.startswith("image/"):
        detail = _detail(collector, part)
        collector.images.append(SeenImage(detail=detail, host=parts.hostname))


def _detail(collector: _Collector, part: Mapping[str, object]) -> str:
    """The part's own media resolution, else the request's, as describe.py labels it."""
    resolution = part.get("mediaResolution")
    level = resolution.get("level") if isinstance(resolution, dict) else collector.resolution
    return _DETAILS.get(str(level), "auto")


def _is_base64(value: object) -> bool:
    """Proto3 JSON bytes: standard or URL-safe alphabet, padding optional, nothing else."""
    if not isinstance(value, str) or not value:
        return False
    try:
        pybase64.b64decode(_standard(value), validate=True)
    except ValueError:
        return False
    return True


def _standard(value: str) -> str:
    standard = value.replace("-", "+").replace("_", "/")
    return standard + "=" * (-len(standard) % 4)


def _bad_bytes(path: str, value: object) -> GoogleError:
    shown = str(value)[:40].partition(",")[0]
    message = (
        f"Invalid value at '{proto_path(path)}' (TYPE_BYTES), Base64 decoding failed for "
        f'"{shown}"'
    )
    return GoogleError(400, message, details=[field_violation(path, message)])
