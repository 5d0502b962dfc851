"""The kinds that speak OpenAI's Chat Completions wire format, one spec each.

All but Azure share the ``openai`` adapter and differ only in where they live, what they
accept in an image and which of their models can see; Azure's adapter changes the URL and
the key header. Image limits are from providers.md §1–13.
"""

from __future__ import annotations

from functools import partial

from aperture.providers.spec import (
    COMMON_IMAGE_TYPES,
    VISION_TOOLS,
    VISION_TOOLS_JSON,
    DocumentLimits,
    ImageLimits,
    KnownModel,
    ProviderSpec,
)
from aperture.settings import Capability

__all__ = [
    "AZURE",
    "DEEPSEEK",
    "GLM",
    "GROQ",
    "MOONSHOT",
    "OPENAI",
    "OPENAI_ADAPTER",
    "QWEN",
    "VLLM",
    "XAI",
]

OPENAI_ADAPTER = "aperture.providers.openai:OpenAIProvider"

_OPENAI_IMAGES = ImageLimits(
    max_images=500, effective_long_edge=2048, low_detail_long_edge=512, max_side=12000
)
_TOOLS_JSON: frozenset[Capability] = frozenset({"tools", "json_mode"})
# The reasoning models (o-series, GPT-5) take ``reasoning_effort``.
_REASONS: frozenset[Capability] = VISION_TOOLS_JSON | {"reasoning"}
_OPENAI_MODELS: tuple[KnownModel, ...] = (
    ("gpt-4o-audio*", frozenset({"audio", "tools", "json_mode"})),
    ("gpt-image*", frozenset({"vision", "image_output"})),
    ("gpt-4o*", VISION_TOOLS_JSON),
    ("gpt-4.1*", VISION_TOOLS_JSON),
    ("gpt-4.5*", VISION_TOOLS_JSON),
    ("gpt-5*", _REASONS),
    ("o1", _REASONS),
    ("o1-2*", _REASONS),
    ("o3*", _REASONS),
    ("o4-mini*", _REASONS),
    ("gpt-4-turbo*", VISION_TOOLS_JSON),
    ("gpt-3.5-turbo*", _TOOLS_JSON),
    ("gpt-4", _TOOLS_JSON),
    ("o1-mini*", frozenset({"json_mode", "reasoning"})),
    ("o3-mini*", _TOOLS_JSON | {"reasoning"}),
)

OPENAI = ProviderSpec(
    # PDF files (platform.openai.com/docs/guides/pdf-files, read 2026-12): 100 pages and
    # 32 MB per request. Not in providers.md.
    documents=DocumentLimits(max_bytes=32_000_000, max_pages=100),
    kind="openai",
    adapter=OPENAI_ADAPTER,
    wire="openai-chat",
    base_url="https://api.openai.com/v1",
    images=_OPENAI_IMAGES,
    fetches_urls=True,
    image_tokens="openai",
    known_models=_OPENAI_MODELS,
    api_key_env="OPENAI_API_KEY",
    demo_models=("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini"),
)

AZURE = ProviderSpec(
    kind="azure",
    adapter="aperture.providers.azure:AzureProvider",
    wire="openai-chat",
    base_url=None,
    base_url_needed="the resource endpoint",
    images=_OPENAI_IMAGES,
    fetches_urls=True,
    image_tokens="openai",
    known_models=_OPENAI_MODELS,
)

# The kinds that speak OpenAI's Chat Completions with OpenAI's adapter; each differs only in
# its endpoint, image limits, token rule and models.
_compatible = partial(ProviderSpec, adapter=OPENAI_ADAPTER, wire="openai-chat", fetches_urls=True)

XAI = _compatible(
    kind="xai",
    base_url="https://api.x.ai/v1",
    images=ImageLimits(accepted=frozenset({"image/png", "image/jpeg"}), max_bytes=20 * 1024 * 1024),
    image_tokens="unpublished",
    known_models=(
        ("grok-2-vision*", VISION_TOOLS),
        ("grok-vision*", VISION_TOOLS),
        ("grok-4*", VISION_TOOLS_JSON),
    ),
    api_key_env="XAI_API_KEY",
    demo_models=("grok-4", "grok-2-vision-1212"),
)

GROQ = _compatible(
    kind="groq",
    base_url="https://api.groq.com/openai/v1",
    images=ImageLimits(max_bytes=3_000_000, max_side=5760, max_images=5),
    image_tokens="unpublished",
    known_models=(
        ("meta-llama/llama-4-scout*", VISION_TOOLS_JSON),
        ("meta-llama/llama-4-maverick*", VISION_TOOLS_JSON),
    ),
    api_key_env="GROQ_API_KEY",
    demo_models=("meta-llama/llama-4-scout-17b-16e-instruct", "llama-3.3-70b-versatile"),
)

DEEPSEEK = _compatible(
    kind="deepseek",
    base_url="https://api.deepseek.com/v1",
    images=ImageLimits(max_bytes=32 * 1024 * 1024, max_side=8192, max_images=600),
    image_tokens="deepseek",
    known_models=(
        ("deepseek-vl*", VISION_TOOLS),
        # Thinks and returns ``reasoning_content`` (api-docs.deepseek.com/guides/reasoning_model).
        ("deepseek-reasoner*", frozenset({"tools", "reasoning"})),
    ),
    api_key_env="DEEPSEEK_API_KEY",
    demo_models=("deepseek-chat", "deepseek-reasoner"),
)

QWEN = _compatible(
    kind="qwen",
    base_url="https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
    images=ImageLimits(
        accepted=COMMON_IMAGE_TYPES | {"image/bmp", "image/tiff"},
        max_bytes=10_000_000,
        max_images=100,
    ),
    image_tokens="qwen",
    known_models=(
        ("qwen*-omni*", VISION_TOOLS | {"audio", "video"}),
        ("qwen-vl*", VISION_TOOLS),
        ("qwen2.5-vl*", VISION_TOOLS),
        ("qwen3-vl*", VISION_TOOLS | {"video"}),
        ("qvq*", VISION_TOOLS),
    ),
    api_key_env="DASHSCOPE_API_KEY",
    demo_models=("qwen-vl-max", "qwen-plus"),
)

MOONSHOT = _compatible(
    kind="moonshot",
    base_url="https://api.moonshot.ai/v1",
    images=_OPENAI_IMAGES,
    image_tokens="unpublished",
    known_models=(("*vision*", VISION_TOOLS), ("kimi-latest*", VISION_TOOLS)),
    api_key_env="MOONSHOT_API_KEY",
    demo_models=("moonshot-v1-8k-vision-preview", "moonshot-v1-8k"),
)

GLM = _compatible(
    kind="glm",
    base_url="https://open.bigmodel.cn/api/paas/v4",
    images=_OPENAI_IMAGES,
    image_tokens="unpublished",
    known_models=(
        ("glm-4v*", VISION_TOOLS),
        ("glm-4.1v*", VISION_TOOLS),
        ("glm-4.5v*", VISION_TOOLS),
    ),
    api_key_env="ZHIPUAI_API_KEY",
    demo_models=("glm-4v-plus", "glm-4-plus"),
)

VLLM = _compatible(
    kind="vllm",
    base_url="http://127.0.0.1:8000/v1",
    images=_OPENAI_IMAGES,
    image_tokens="unpublished",
    # vLLM serves whatever model it was started with: the config declares capabilities.
    known_models=(),
)
