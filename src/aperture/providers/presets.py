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
    LogprobSupport,
    MediaLimits,
    OtherWire,
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
# The Responses API as an upstream: no audio or video parts, one answer; logprobs as asked.
_RESPONSES_ADAPTER = "aperture.providers.openai_responses:OpenAIResponsesProvider"

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

# input_audio takes wav and mp3 (the SDK's ``InputAudio.format``); Chat Completions takes no
# video. Reasoning models refuse logprobs ("not supported with reasoning models").
_OPENAI_AUDIO = MediaLimits(formats=frozenset({"wav", "mp3"}), source="openai SDK InputAudio")
_OPENAI_LOGPROBS = LogprobSupport(
    max_top=20, except_models=("o1*", "o3*", "o4*", "gpt-5", "gpt-5-*")
)
# OpenAI-compatible servers that take video (vLLM, Qwen-VL, GLM-4.5V) send it as video_url.
_VIDEO_URL = MediaLimits(source="video_url parts, as vLLM, DashScope and GLM document them")
_ANY_AUDIO = MediaLimits(source="input_audio parts; the server checks the format")

OPENAI = ProviderSpec(
    audio=_OPENAI_AUDIO,
    logprobs=_OPENAI_LOGPROBS,
    max_choices=128,
    # PDF files (platform.openai.com/docs/guides/pdf-files, read 2026-12): 100 pages and
    # 32 MB per request; "both the extracted text and an image of each page" go into the
    # model's context: the page image at OpenAI's image rule plus its text (1,500 tokens
    # a page assumed, as for Claude: OpenAI states no figure). Not in providers.md.
    documents=DocumentLimits(max_bytes=32_000_000, max_pages=100, text_tokens_per_page=1500),
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
    # Some models (the pro ones) are served only at /v1/responses.
    wires=(OtherWire(name="responses", adapter=_RESPONSES_ADAPTER, logprobs=_OPENAI_LOGPROBS),),
)

AZURE = ProviderSpec(
    audio=_OPENAI_AUDIO,
    logprobs=_OPENAI_LOGPROBS,
    max_choices=128,
    kind="azure",
    adapter="aperture.providers.azure:AzureProvider",
    wire="openai-chat",
    base_url=None,
    base_url_needed="the resource endpoint",
    images=_OPENAI_IMAGES,
    fetches_urls=True,
    image_tokens="openai",
    known_models=_OPENAI_MODELS,
    wires=(
        OtherWire(
            name="responses",
            adapter="aperture.providers.azure:AzureResponsesProvider",
            logprobs=_OPENAI_LOGPROBS,
        ),
    ),
)

# The kinds that speak OpenAI's Chat Completions with OpenAI's adapter; each differs only in
# its endpoint, image limits, token rule and models.
_compatible = partial(ProviderSpec, adapter=OPENAI_ADAPTER, wire="openai-chat", fetches_urls=True)

XAI = _compatible(
    # xAI's API reference: top_logprobs 0..8; n is taken.
    logprobs=LogprobSupport(max_top=8),
    max_choices=128,
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
    # Groq's API reference: logprobs and top_logprobs are not supported yet, n must be 1.
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
    # api-docs.deepseek.com: logprobs, top_logprobs 0..20; deepseek-reasoner refuses them.
    logprobs=LogprobSupport(max_top=20, except_models=("deepseek-reasoner*",)),
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
    # DashScope's compatible mode: top_logprobs 0..5, n 1..4; omni models hear input_audio,
    # VL models see video_url.
    logprobs=LogprobSupport(max_top=5),
    max_choices=4,
    audio=_ANY_AUDIO,
    video=_VIDEO_URL,
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
    video=_VIDEO_URL,
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
    # vLLM's OpenAI server: logprobs up to its --max-logprobs (20 by default), any n,
    # input_audio and video_url for the models that take them.
    logprobs=LogprobSupport(max_top=20),
    max_choices=128,
    audio=_ANY_AUDIO,
    video=_VIDEO_URL,
    kind="vllm",
    base_url="http://127.0.0.1:8000/v1",
    images=_OPENAI_IMAGES,
    image_tokens="unpublished",
    # vLLM serves whatever model it was started with: the config declares capabilities.
    known_models=(),
)
