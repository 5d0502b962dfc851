"""OpenAI Responses request JSON -> canonical ``ChatRequest``. Pure.

``instructions`` becomes the leading system turn; a run of ``function_call`` items becomes
one assistant turn with its tool calls (joined to the assistant message before it, if any);
each ``function_call_output`` becomes a tool turn. An ``item_reference`` to an output item of
a kept answer becomes a stand-in in its place (an assistant turn, a tool call or a thought)
that the continuation step fills from the store, as ``Thread.items`` says. The locator maps
every canonical part back to its place in ``input``, so an image refused anywhere in the
pipeline is named as ``input[2].content[1].image_url``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from aperture.dialects.decoding import convert_at, decode_request
from aperture.dialects.openai.inbound import FORBIDDEN_FIELDS, check_logprobs
from aperture.dialects.responses import wire
from aperture.dialects.responses.outbound import REDACTED_PREFIX
from aperture.errors import InvalidRequestError, ItemNotFoundError, quote
from aperture.media.payloads import Payloads
from aperture.model import (
    ChatRequest,
    File,
    Image,
    Message,
    NamedToolChoice,
    Part,
    Reasoning,
    ResponseFormat,
    StoredItem,
    Text,
    Thought,
    Thread,
    Tool,
    ToolCall,
    ToolChoice,
)

__all__ = ["InputLocator", "parse_responses_request"]

_DECODER = msgspec.json.Decoder(wire.ResponsesRequest)


class InputLocator:
    """Paths into ``input`` recorded while converting."""

    max_tokens = "max_output_tokens"
    reasoning = "reasoning.effort"
    logprobs = "include"

    def __init__(self) -> None:
        self.paths: dict[tuple[int, int], str] = {}
        self.image_output = "tools"

    def image(self, message: int, part: int) -> str:
        path = self.paths.get((message, part), "input")
        return f"{path}.image_url" if path != "input" else path

    def part(self, message: int, part: int) -> str:
        return self.paths.get((message, part), "input")


def parse_responses_request(
    body: bytes, payloads: Payloads | None = None
) -> tuple[ChatRequest, InputLocator]:
    """Decode a Responses body into the canonical request and its field locator.

    Raises:
        InvalidJsonError, InvalidRequestError: with the path of the offending field.
    """
    request, keys = decode_request(body, _DECODER, payloads)
    _check_fields(keys, request)
    check_logprobs(True, request.top_logprobs, top_field="top_logprobs")
    locator = InputLocator()
    messages: list[Message] = []
    items: list[StoredItem] = []
    if request.instructions:
        messages.append(Message("system", request.instructions))
    instructions = len(messages)
    if isinstance(request.input, str):
        messages.append(Message("user", request.input))
    else:
        _convert_items(request.input, messages, items, locator)
    if not messages:
        raise InvalidRequestError("input must hold at least one item.", param="input")
    effort = request.reasoning.effort if request.reasoning is not None else None
    tools = [t for t in request.tools or () if isinstance(t, wire.FunctionTool)]
    extra: dict[str, msgspec.Raw] = {}
    for i, tool in enumerate(request.tools or ()):
        if isinstance(tool, wire.ImageGenerationTool):
            # What Chat Completions' ``modalities`` says, so every provider's adapter reads one
            # canonical ask (``ChatRequest.wants_images``).
            extra["modalities"] = _TEXT_AND_IMAGE
            locator.image_output = f"tools[{i}]"
            break
    return (
        ChatRequest(
            model=request.model,
            messages=tuple(messages),
            max_tokens=request.max_output_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            user=request.user or request.safety_identifier,
            tools=tuple(Tool(t.name, t.description, t.parameters, t.strict) for t in tools)
            if tools
            else None,
            tool_choice=_tool_choice(request.tool_choice),
            parallel_tool_calls=request.parallel_tool_calls,
            response_format=_format(request.text),
            stream=bool(request.stream),
            logprobs=_LOGPROBS in (request.include or ()) or request.top_logprobs is not None,
            top_logprobs=request.top_logprobs,
            # A Responses stream always ends with the usage in ``response.completed``.
            include_usage=True,
            thread=_thread(request, instructions, tuple(items)),
            reasoning=Reasoning(enabled=effort != "none", effort=effort)
            if effort is not None
            else None,
            extra=extra,
        ),
        locator,
    )


_TEXT_AND_IMAGE = msgspec.Raw(b'["text","image"]')


def _thread(
    request: wire.ResponsesRequest, instructions: int, items: tuple[StoredItem, ...]
) -> Thread | None:
    # Answers are kept unless the client says not to, as OpenAI's are.
    store = request.store is not False
    if request.previous_response_id is None and not store and not items:
        return None
    return Thread(request.previous_response_id, store, instructions, items)


_LOGPROBS = "message.output_text.logprobs"
"""The ``include`` value asking for the answer's token logprobs."""


def _check_fields(keys: list[str], request: wire.ResponsesRequest) -> None:
    for key in keys:
        if key in wire.MODELLED_FIELDS:
            continue
        if key.lower() in FORBIDDEN_FIELDS:
            raise InvalidRequestError(
                f"The field {quote(key)} is not accepted: Aperture never takes upstream addresses, "
                "credentials or headers from a request.",
                param=key,
            )
        # Unlike Chat Completions, nothing here is forwarded as sent: a Responses field
        # means nothing to the Chat Completions or native APIs the request is translated to.
        raise InvalidRequestError(
            f"The field {quote(key)} is not supported on /v1/responses by this gateway.",
            param=key,
        )
    if request.max_output_tokens is not None and request.max_output_tokens < 1:
        raise InvalidRequestError(
            "max_output_tokens must be at least 1.", param="max_output_tokens"
        )
    if request.previous_response_id is not None and not request.previous_response_id:
        raise InvalidRequestError(
            "previous_response_id must not be empty.", param="previous_response_id"
        )
    if request.background:
        raise InvalidRequestError(
            "background responses are not supported by this gateway.", param="background"
        )


# The ids ``outbound`` gives output items: kind, the response id's tail, the item's index.
_ITEM_ID = re.compile(r"(msg|fc|rs)_(.+)_(\d+)")
_PARTS: dict[str, Literal["text", "tool_call", "thought"]] = {
    "msg": "text",
    "fc": "tool_call",
    "rs": "thought",
}


def _reference(item_id: str, path: str) -> StoredItem:
    """The kept answer's piece ``item_id`` names (its message and slot are set by the caller).

    Raises:
        ItemNotFoundError: not an id this gateway gives.
    """
    match = _ITEM_ID.fullmatch(item_id)
    if match is None:
        raise ItemNotFoundError(f"Item with id {quote(item_id)} not found.", param=f"{path}.id")
    kind, tail, index = match.groups()
    return StoredItem(0, _PARTS[kind], 0, f"resp_{tail}", int(index), f"{path}.id")


class _Turns:
    """The canonical turns, built item by item."""

    def __init__(self, messages: list[Message], items: list[StoredItem]) -> None:
        self.messages = messages
        self.items = items
        self.thoughts: list[Thought] = []  # reasoning waiting for the assistant turn it led to
        # The referenced ones among them, with their place in ``thoughts``.
        self.waiting: list[tuple[int, StoredItem]] = []

    def attach(self, at: int) -> tuple[Thought, ...] | None:
        """The waiting thoughts, for message ``at``; referenced ones are named for filling."""
        for slot, stored in self.waiting:
            self.items.append(msgspec.structs.replace(stored, message=at, slot=slot))
        attached = tuple(self.thoughts) or None
        self.thoughts.clear()
        self.waiting.clear()
        return attached

    def message(self, message: Message) -> None:
        if message.role == "assistant" and self.thoughts:
            message = msgspec.structs.replace(message, reasoning=self.attach(len(self.messages)))
        self.messages.append(message)

    def call(self, call: ToolCall) -> int:
        """Put ``call`` on the assistant turn it belongs to; its place among its calls."""
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == "assistant" and not self.thoughts:
            calls = (*(last.tool_calls or ()), call)
            self.messages[-1] = msgspec.structs.replace(last, tool_calls=calls)
            return len(calls) - 1
        at = len(self.messages)
        self.messages.append(
            Message("assistant", None, tool_calls=(call,), reasoning=self.attach(at))
        )
        return 0

    def reference(self, stored: StoredItem) -> None:
        """A stand-in for the kept piece ``stored`` names, filled (or dropped) later."""
        if stored.part == "thought":
            self.waiting.append((len(self.thoughts), stored))
            self.thoughts.append(Thought())
        elif stored.part == "text":
            at = len(self.messages)
            self.messages.append(Message("assistant", None, reasoning=self.attach(at)))
            self.items.append(msgspec.structs.replace(stored, message=at))
        else:
            slot = self.call(ToolCall("", "", ""))
            at = len(self.messages) - 1
            self.items.append(msgspec.structs.replace(stored, message=at, slot=slot))


def _convert_items(
    raws: list[dict[str, Any]],
    messages: list[Message],
    items: list[StoredItem],
    locator: InputLocator,
) -> None:
    turns = _Turns(messages, items)
    for i, raw in enumerate(raws):
        path = f"input[{i}]"
        if not isinstance(raw, dict):
            raise InvalidRequestError("Each input item must be an object.", param=path)
        # A message may leave its type out (the SDK's EasyInputMessage).
        if "type" not in raw and "role" in raw:
            raw = {**raw, "type": "message"}
        item: wire.InputItem = convert_at(raw, wire.InputItem, path)  # type: ignore[arg-type]
        match item:
            case wire.MessageItem():
                turns.message(_message(item, path, len(messages), locator))
            case wire.ItemReference(id=item_id):
                turns.reference(_reference(item_id, path))
            case wire.FunctionCallItem(call_id=call_id, name=name, arguments=arguments):
                turns.call(ToolCall(call_id, name, arguments))
            case wire.FunctionCallOutputItem(call_id=call_id, output=output):
                messages.append(Message("tool", _tool_output(output, path), tool_call_id=call_id))
            case wire.ReasoningItem(summary=summary, encrypted_content=signature):
                # The summary and the signature (``encrypted_content``) this gateway sent go
                # back to the provider that made them; from another, it has nothing to check.
                texts = [s["text"] for s in summary or () if isinstance(s, dict) and "text" in s]
                if signature is not None and signature.startswith(REDACTED_PREFIX):
                    turns.thoughts.append(Thought(redacted=signature.removeprefix(REDACTED_PREFIX)))
                else:
                    turns.thoughts.append(Thought("\n\n".join(map(str, texts)), signature))


def _message(item: wire.MessageItem, path: str, index: int, locator: InputLocator) -> Message:
    if isinstance(item.content, str):
        return Message(item.role, item.content)
    parts: list[Part] = []
    for j, part in enumerate(item.content):
        part_path = f"{path}.content[{j}]"
        locator.paths[index, len(parts)] = part_path
        parts.append(_part(part, part_path))
    return Message(item.role, tuple(parts))


def _part(part: wire.ContentPart, path: str) -> Part:
    match part:
        case wire.InputText(text=text) | wire.OutputText(text=text):
            return Text(text)
        case wire.Refusal(refusal=refusal):
            return Text(refusal)
        case wire.InputImage(image_url=str() as url, detail=detail):
            # ``original`` asks for no downscaling: the gateway's nearest is ``high``.
            return Image(url, "high" if detail == "original" else detail)
        case wire.InputImage():
            raise InvalidRequestError(
                "input_image needs an image_url (a data URI or an http(s) URL): this gateway "
                "has no Files API, so a file_id cannot be resolved.",
                param=f"{path}.image_url",
            )
        case wire.InputFile(file_url=str()):
            raise InvalidRequestError(
                "input_file with a file_url is not supported; send the file as file_data.",
                param=f"{path}.file_url",
            )
        case wire.InputFile(file_data=data, file_id=file_id, filename=filename):
            if data is None and file_id is None:
                raise InvalidRequestError("input_file needs file_data.", param=f"{path}.file_data")
            # The same canonical part as Chat Completions' ``file``: one path from here on.
            return File(file_id, data, filename)
    raise AssertionError(f"unhandled content part {type(part).__name__}")


def _tool_output(output: str | list[Any], path: str) -> str:
    if isinstance(output, str):
        return output
    texts: list[str] = []
    for k, part in enumerate(output):
        if not isinstance(part, wire.InputText):
            # A canonical tool turn holds text only; an image here would have no place
            # every provider can take it.
            raise InvalidRequestError(
                "function_call_output may carry input_text only on this gateway; send images "
                "in a user message after the tool outputs.",
                param=f"{path}.output[{k}]",
            )
        texts.append(part.text)
    return "\n".join(texts)


def _tool_choice(
    choice: str | wire.FunctionChoice | wire.ImageGenerationChoice | None,
) -> ToolChoice | None:
    if isinstance(choice, wire.FunctionChoice):
        return NamedToolChoice(choice.name)
    if isinstance(choice, wire.ImageGenerationChoice):
        return None  # the image_generation tool already asks for the image
    return choice  # type: ignore[return-value]  # the wire Literal is the canonical Literal


def _format(text: wire.TextConfig | None) -> ResponseFormat | None:
    match text.format if text is not None else None:
        case wire.TextFormatJsonObject():
            return ResponseFormat("json_object")
        case wire.TextFormatJsonSchema(name=name, schema=schema, description=d, strict=strict):
            spec: dict[str, Any] = {"name": name, "schema": schema}
            if d is not None:
                spec["description"] = d
            if strict is not None:
                spec["strict"] = strict
            return ResponseFormat("json_schema", spec)
        case _:
            return None
