"""The embedded default: what ``aperture serve`` runs with when no config file is given.

Demo models answered by the built-in emulator, mounted on the gateway's own port, plus a
real provider for each API key found in the environment.
"""

from __future__ import annotations

from collections.abc import Mapping

from aperture.providers.registry import SPECS
from aperture.settings.schema import (
    Capability,
    ModelConstraints,
    ModelSettings,
    ProviderSettings,
    ServerSettings,
    Settings,
)

__all__ = ["demo_settings"]

_VISION: tuple[Capability, ...] = ("vision", "tools", "json_mode")


def demo_settings(env: Mapping[str, str], *, host: str, port: int) -> Settings:
    """The demo's settings, with a real provider for each API key found in ``env``."""
    emulators = f"http://127.0.0.1:{port}/emulator"
    providers = [
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
    ]
    models = [
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
    ]
    for kind, spec in SPECS.items():
        key = env.get(spec.api_key_env) if spec.api_key_env else None
        if not key:
            continue
        providers.append(
            ProviderSettings(
                name=kind,
                kind=kind,
                api_key=key,
                # OpenAI's newer models refuse the old name for the output cap.
                max_tokens_field="max_completion_tokens" if kind == "openai" else "max_tokens",
            )
        )
        models.extend(ModelSettings(name=m, provider=kind) for m in spec.demo_models)
    return Settings(
        server=ServerSettings(host=host, port=port, emulator=True),
        providers=tuple(providers),
        models=tuple(models),
    )
