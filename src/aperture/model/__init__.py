"""Canonical, provider-neutral types: what every dialect parses into and every provider reads."""

from aperture.model.chat import (
    Audio,
    CacheMark,
    ChatRequest,
    Detail,
    File,
    Image,
    InlineImage,
    Message,
    NamedToolChoice,
    Part,
    ResponseFormat,
    Role,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    Video,
)
from aperture.model.response import ChatResponse, Choice, FinishReason, Usage
from aperture.model.stream import Delta, Finish, StreamEvent, ToolCallDelta, UsageReport
from aperture.model.target import Target

__all__ = [
    "Audio",
    "CacheMark",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "Delta",
    "Detail",
    "File",
    "Finish",
    "FinishReason",
    "Image",
    "InlineImage",
    "Message",
    "NamedToolChoice",
    "Part",
    "ResponseFormat",
    "Role",
    "StreamEvent",
    "Target",
    "Text",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "Usage",
    "UsageReport",
    "Video",
]
