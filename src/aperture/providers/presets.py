"""Where each hosted provider lives and where its key is found, for the demo and defaults.

Presets whose ``openai_wire`` is true speak the Chat Completions wire format and share the
``openai`` adapter; a preset only supplies defaults that config can override.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

__all__ = ["PRESETS", "Preset"]


class Preset(NamedTuple):
    base_url: str
    api_key_env: str | None
    """The environment variable the demo reads a key from."""
    demo_models: tuple[str, ...] = ()
    """Models the demo offers when the key is present."""
    openai_wire: bool = True


PRESETS: Mapping[str, Preset] = {
    "openai": Preset(
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
        ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini"),
    ),
    "xai": Preset("https://api.x.ai/v1", "XAI_API_KEY", ("grok-4", "grok-2-vision-1212")),
    "groq": Preset(
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
        ("meta-llama/llama-4-scout-17b-16e-instruct", "llama-3.3-70b-versatile"),
    ),
    "deepseek": Preset(
        "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", ("deepseek-chat", "deepseek-reasoner")
    ),
    "qwen": Preset(
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        "DASHSCOPE_API_KEY",
        ("qwen-vl-max", "qwen-plus"),
    ),
    "moonshot": Preset(
        "https://api.moonshot.ai/v1",
        "MOONSHOT_API_KEY",
        ("moonshot-v1-8k-vision-preview", "moonshot-v1-8k"),
    ),
    "glm": Preset(
        "https://open.bigmodel.cn/api/paas/v4", "ZHIPUAI_API_KEY", ("glm-4v-plus", "glm-4-plus")
    ),
    "vllm": Preset("http://127.0.0.1:8000/v1", None),
    "gemini": Preset(
        "https://generativelanguage.googleapis.com",
        "GEMINI_API_KEY",
        ("gemini-2.5-flash", "gemini-2.5-pro"),
        openai_wire=False,
    ),
    "mistral": Preset(
        "https://api.mistral.ai",
        "MISTRAL_API_KEY",
        ("pixtral-large-latest", "mistral-small-latest", "mistral-large-latest"),
        openai_wire=False,
    ),
    "cohere": Preset(
        "https://api.cohere.com",
        "COHERE_API_KEY",
        ("command-a-vision-07-2025", "command-a-03-2025"),
        openai_wire=False,
    ),
    "ollama": Preset("http://127.0.0.1:11434", None, openai_wire=False),
    "anthropic": Preset(
        "https://api.anthropic.com",
        "ANTHROPIC_API_KEY",
        ("claude-sonnet-4-5", "claude-opus-4-1", "claude-3-5-haiku-latest"),
        openai_wire=False,
    ),
}
