"""The embedded default: what ``aperture serve`` runs with when no config file is given.

Demo models answered by the built-in emulator, mounted on the gateway's own port, plus a
real provider for each API key found in the environment.
"""

from __future__ import annotations

from collections.abc import Mapping

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
_OPENAI_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini")


def demo_settings(env: Mapping[str, str], *, host: str, port: int) -> Settings:
    emulator = ProviderSettings(
        name="emulator",
        kind="openai",
        base_url=f"http://127.0.0.1:{port}/emulator/openai/v1",
        api_key="demo",
    )
    providers = [emulator]
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
    ]
    if env.get("OPENAI_API_KEY"):
        providers.append(
            ProviderSettings(
                name="openai",
                kind="openai",
                api_key=env["OPENAI_API_KEY"],
                base_url=env.get("OPENAI_BASE_URL") or None,
                max_tokens_field="max_completion_tokens",
            )
        )
        models.extend(ModelSettings(name=m, provider="openai") for m in _OPENAI_MODELS)
    return Settings(
        server=ServerSettings(host=host, port=port, emulator=True),
        providers=tuple(providers),
        models=tuple(models),
    )
