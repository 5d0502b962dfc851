"""The demo catalog: providers answered by the built-in emulator, and the models they serve.

``aperture serve`` without a config file runs on it, and a config includes it with
``demo: true``. The emulator is mounted on the gateway's own public port, so the providers'
URLs follow ``server.port``: the catalog is included once that port is final (the app does
it when it is built), and the loader includes it only to check references against it.
"""

from __future__ import annotations

import msgspec

from aperture.settings import extras
from aperture.settings.schema import (
    Capability,
    ModelConstraints,
    ModelSettings,
    ProviderSettings,
    Settings,
)

__all__ = ["demo_models", "demo_providers", "include_demo"]

_VISION: tuple[Capability, ...] = ("vision", "tools", "json_mode")


def include_demo(settings: Settings) -> Settings:
    """``settings`` with the demo catalog added if ``settings.demo`` asks for it.

    A demo provider or model whose name the config already uses is left out (so is a demo
    model whose provider was), which also makes a second inclusion add nothing.
    """
    if not settings.demo:
        return settings
    taken = {p.name for p in settings.providers}
    providers = [
        p
        for p in demo_providers(settings.server.port)
        # Without the bedrock extra the demo has no Bedrock, rather than failing its check.
        if p.name not in taken and (p.kind != "bedrock" or extras.installed("bedrock"))
    ]
    ours = {p.name for p in providers}
    names = {name for m in settings.models for name in (m.name, *m.aliases)}
    models = [m for m in demo_models() if m.name not in names and m.provider in ours]
    return msgspec.structs.replace(
        settings,
        server=msgspec.structs.replace(settings.server, emulator=True),
        providers=(*settings.providers, *providers),
        models=(*settings.models, *models),
    )


def demo_providers(port: int) -> tuple[ProviderSettings, ...]:
    """One provider per wire format, each answered by its emulator on ``port``."""
    emulators = f"http://127.0.0.1:{port}/emulator"
    return (
        ProviderSettings(
            name="emulator", kind="openai", base_url=f"{emulators}/openai/v1", api_key="demo"
        ),
        ProviderSettings(
            name="emulator-anthropic",
            kind="anthropic",
            base_url=f"{emulators}/anthropic",
            api_key="demo",
        ),
        ProviderSettings(
            name="emulator-gemini", kind="gemini", base_url=f"{emulators}/gemini", api_key="demo"
        ),
        *(
            ProviderSettings(
                name=f"emulator-{kind}", kind=kind, base_url=f"{emulators}/{kind}", api_key="demo"
            )
            for kind in ("mistral", "cohere", "ollama")
        ),
        ProviderSettings(
            name="emulator-bedrock",
            kind="bedrock",
            base_url=f"{emulators}/bedrock",
            api_key="demo",
            region="us-east-1",
        ),
    )


def demo_models() -> tuple[ModelSettings, ...]:
    """The models of the README's "Try it offline" table."""
    return (
        ModelSettings(
            name="demo-vision",
            provider="emulator",
            upstream_model="emulator-vision",
            capabilities=_VISION,
        ),
        ModelSettings(
            name="demo-text",
            provider="emulator",
            upstream_model="emulator-text",
            capabilities=("tools", "json_mode"),
        ),
        ModelSettings(
            name="qwen3-vl-30b-instruct",
            provider="emulator",
            upstream_model="emulator-vision",
            capabilities=_VISION,
        ),
        ModelSettings(
            name="gpt-5.5-pro",
            provider="emulator",
            upstream_model="emulator-vision",
            capabilities=_VISION,
            constraints=ModelConstraints(min_max_tokens=200),
        ),
        # Capabilities come from the anthropic kind's table of known models.
        ModelSettings(
            name="demo-claude", provider="emulator-anthropic", upstream_model="claude-sonnet-4-5"
        ),
        ModelSettings(
            name="demo-gemini", provider="emulator-gemini", upstream_model="gemini-2.5-flash"
        ),
        # An image model: answers with a picture of what was asked (modalities text+image).
        ModelSettings(
            name="demo-draw",
            provider="emulator-gemini",
            upstream_model="gemini-2.5-flash-image",
        ),
        # OpenAI's Images API, answered by the emulator's /v1/images/generations and /edits.
        ModelSettings(name="demo-gpt-image", provider="emulator", upstream_model="gpt-image-1"),
        ModelSettings(
            name="demo-mistral", provider="emulator-mistral", upstream_model="pixtral-large-latest"
        ),
        ModelSettings(
            name="demo-cohere",
            provider="emulator-cohere",
            upstream_model="command-a-vision-07-2025",
        ),
        ModelSettings(name="demo-ollama", provider="emulator-ollama", upstream_model="llava:13b"),
        ModelSettings(
            name="demo-bedrock",
            provider="emulator-bedrock",
            upstream_model="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
    )
