"""The embedded default: what ``aperture serve`` runs with when no config file is given.

The demo catalog (``settings/demo.py``: demo models answered by the built-in emulator,
mounted on the gateway's own port), a real provider for each API key found in the
environment, and the master key from ``APERTURE_MASTER_KEY`` if it is set, so that keys and
the admin API can be tried on the demo models too.
"""

from __future__ import annotations

from collections.abc import Mapping

from aperture.providers.registry import SPECS
from aperture.settings.demo import include_demo
from aperture.settings.schema import (
    AuthSettings,
    ModelSettings,
    ProviderSettings,
    ServerSettings,
    Settings,
)

__all__ = ["demo_settings"]


def demo_settings(env: Mapping[str, str], *, host: str, port: int) -> Settings:
    """The demo's settings, with a real provider for each API key found in ``env``."""
    master_key = env.get("APERTURE_MASTER_KEY") or None
    settings = include_demo(
        Settings(
            server=ServerSettings(host=host, port=port),
            auth=(
                AuthSettings(
                    master_key=master_key, key_pepper=env.get("APERTURE_KEY_PEPPER") or None
                )
                if master_key
                else None
            ),
            demo=True,
        )
    )
    providers = list(settings.providers)
    models = list(settings.models)
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
        server=settings.server,
        auth=settings.auth,
        providers=tuple(providers),
        models=tuple(models),
        demo=True,
    )
