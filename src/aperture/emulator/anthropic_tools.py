"""The tools and ``tool_choice`` of a Messages request, read the way Anthropic does."""

from __future__ import annotations

from collections.abc import Mapping

from aperture.emulator.anthropic_cache import read_cache_control
from aperture.emulator.anthropic_errors import field_required, invalid, unknown_tag, wrong_type

__all__ = ["TOOL_CHOICES", "read_tools", "tool_breakpoints"]

TOOL_CHOICES = ("auto", "any", "tool", "none")


def _required(mapping: Mapping[str, object], key: str, parent: str | None = None) -> object:
    if key not in mapping:
        raise field_required(f"{parent}.{key}" if parent else key)
    return mapping[key]


def read_tools(data: Mapping[str, object]) -> str | None:
    """The tool a ``tool_choice`` of ``any`` or ``tool`` forces the answer to call."""
    tools, choice = data.get("tools"), data.get("tool_choice")
    names = _tool_names(tools) if tools is not None else []
    if choice is None:
        return None
    if not isinstance(choice, dict):
        raise wrong_type("tool_choice", "a valid dictionary")
    kind = _required(choice, "type", "tool_choice")
    if kind not in TOOL_CHOICES:
        raise unknown_tag("tool_choice", kind, TOOL_CHOICES)
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise wrong_type(f"tool_choice.{kind}.disable_parallel_tool_use", "a valid boolean")
    if kind in ("auto", "none"):
        return None
    if not names:
        raise invalid("tool_choice: tool_choice may only be specified while providing tools")
    if kind == "any":
        return names[0]
    name = _required(choice, "name", "tool_choice.tool")
    if not isinstance(name, str):
        raise wrong_type("tool_choice.tool.name", "a valid string")
    if name not in names:
        raise invalid(f"tool_choice.tool.name: Tool '{name}' not found in tools")
    return name


def tool_breakpoints(tools: object) -> int:
    """How many tools carry a cache breakpoint (each checked)."""
    if not isinstance(tools, list):
        return 0  # ``_tool_names`` reports the wrong type
    return sum(
        read_cache_control(tool, f"tools.{k}")
        for k, tool in enumerate(tools)
        if isinstance(tool, dict)
    )


def _tool_names(tools: object) -> list[str]:
    if not isinstance(tools, list):
        raise wrong_type("tools", "a valid list")
    names = []
    for k, tool in enumerate(tools):
        path = f"tools.{k}"
        if not isinstance(tool, dict):
            raise wrong_type(path, "a valid dictionary")
        name = _required(tool, "name", path)
        if not isinstance(name, str):
            raise wrong_type(f"{path}.name", "a valid string")
        names.append(name)
        if tool.get("type", "custom") not in ("custom", None):
            continue  # a server tool (web search, code execution...): no schema of ours
        schema = _required(tool, "input_schema", path)
        if not isinstance(schema, dict):
            raise wrong_type(f"{path}.input_schema", "a valid dictionary")
        if schema.get("type") != "object":
            raise wrong_type(f"{path}.input_schema.type", "'object'")
        description = tool.get("description")
        if description is not None and not isinstance(description, str):
            raise wrong_type(f"{path}.description", "a valid string")
    return names
