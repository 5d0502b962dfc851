"""The model catalog: public names and aliases -> a provider, an upstream model, capabilities."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from aperture.errors import ModelNotFoundError
from aperture.model.target import Target
from aperture.routing.known_models import known_capabilities
from aperture.settings import ModelConstraints, Settings, UrlPolicy

__all__ = ["Catalog", "ModelEntry"]


class ModelEntry(msgspec.Struct, frozen=True):
    name: str
    target: Target
    capabilities: frozenset[str]
    constraints: ModelConstraints
    url_policy: UrlPolicy
    aliases: tuple[str, ...] = ()

    def can(self, capability: str) -> bool:
        return capability in self.capabilities


class Catalog:
    """Resolves the model a client names; built once from settings, read on every request."""

    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self._entries = tuple(entries)
        self._by_name = {
            name: entry for entry in self._entries for name in (entry.name, *entry.aliases)
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalog:
        providers = {p.name: p for p in settings.providers}
        entries = []
        for model in settings.models:
            provider = providers[model.provider]
            upstream = model.upstream_model or model.name
            capabilities = (
                frozenset(model.capabilities)
                if model.capabilities is not None
                else known_capabilities(provider.kind, upstream) or frozenset()
            )
            entries.append(
                ModelEntry(
                    name=model.name,
                    target=Target(provider, upstream),
                    capabilities=capabilities,
                    constraints=model.constraints,
                    url_policy=model.url_policy or settings.images.url_policy,
                    aliases=model.aliases,
                )
            )
        return cls(entries)

    @property
    def entries(self) -> tuple[ModelEntry, ...]:
        return self._entries

    def resolve(self, name: str) -> ModelEntry:
        """The entry for a public name or alias.

        Raises:
            ModelNotFoundError: nothing is configured under that name.
        """
        entry = self._by_name.get(name)
        if entry is None:
            raise ModelNotFoundError(
                f"The model {name!r} does not exist. GET /v1/models lists the models available.",
                param="model",
            )
        return entry

    def names_with(self, capability: str) -> list[str]:
        """Public names of the models that have ``capability``, for error messages."""
        return [e.name for e in self._entries if e.can(capability)]
