"""The catalog: what a model name resolves to — one model, or a route over several targets.

Built from settings (and, once edited through the admin API, from the stored documents),
swapped whole when they change, and read on every request without a database read.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

import msgspec

from aperture.errors import ModelNotFoundError, quote
from aperture.model.target import Target
from aperture.routing.known_models import carried_capabilities, known_capabilities
from aperture.settings import (
    ModelConstraints,
    ModelSettings,
    ProviderSettings,
    RouteSettings,
    Settings,
    UrlPolicy,
)
from aperture.settings.schema import Strategy

__all__ = ["Catalog", "ModelEntry", "Resolution", "TargetOption"]


class TargetOption(msgspec.Struct, frozen=True):
    """One place a request may go, with what the model there can do."""

    target: Target
    capabilities: frozenset[str]
    weight: float = 1.0
    canary: bool = False

    @property
    def key(self) -> str:
        return f"{self.target.provider.name}/{self.target.upstream_model}"

    def can(self, capability: str) -> bool:
        return capability in self.capabilities


class Resolution(msgspec.Struct, frozen=True):
    """What a requested model name resolved to."""

    name: str
    options: tuple[TargetOption, ...]
    strategy: Strategy
    constraints: ModelConstraints
    url_policy: UrlPolicy
    route_id: str | None = None
    canary_percent: float = 5.0

    def can(self, capability: str) -> bool:
        return any(o.can(capability) for o in self.options)


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
    """Resolves the model a client names; immutable, replaced whole on change."""

    def __init__(
        self,
        entries: Iterable[ModelEntry],
        routes: Iterable[RouteSettings] = (),
        providers: Mapping[str, ProviderSettings] | None = None,
        default_url_policy: UrlPolicy = "reject",
    ) -> None:
        self._entries = tuple(entries)
        self._routes = tuple(routes)
        self._providers = dict(providers or {})
        self._default_url_policy = default_url_policy
        self._by_name = {
            name: entry for entry in self._entries for name in (entry.name, *entry.aliases)
        }
        self._by_target = {
            (e.target.provider.name, e.target.upstream_model): e for e in self._entries
        }

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        models: Iterable[ModelSettings] | None = None,
        routes: Iterable[RouteSettings] | None = None,
    ) -> Catalog:
        """The catalog of ``settings``; stored ``models``/``routes`` replace the config's."""
        providers = {p.name: p for p in settings.providers}
        entries = [
            _entry(model, providers[model.provider], settings.images.url_policy)
            for model in (settings.models if models is None else models)
            if model.provider in providers
        ]
        return cls(
            entries,
            settings.routes if routes is None else routes,
            providers,
            settings.images.url_policy,
        )

    @property
    def entries(self) -> tuple[ModelEntry, ...]:
        return self._entries

    @property
    def routes(self) -> tuple[RouteSettings, ...]:
        return self._routes

    def resolve(self, name: str) -> Resolution:
        """What ``name`` resolves to: a matching route first, else a model or alias.

        Raises:
            ModelNotFoundError: nothing is configured under that name.
        """
        route = self._route_for(name)
        entry = self._by_name.get(name)
        if route is not None:
            return self._route_resolution(route, name, entry)
        if entry is None:
            raise ModelNotFoundError(
                f"The model {quote(name)} does not exist. GET /v1/models lists the models "
                "available.",
                param="model",
            )
        return Resolution(
            name=entry.name,
            options=(TargetOption(entry.target, entry.capabilities),),
            strategy="priority",
            constraints=entry.constraints,
            url_policy=entry.url_policy,
        )

    def names_with(self, capability: str) -> list[str]:
        """Public names of the models that have ``capability``, for error messages."""
        return [e.name for e in self._entries if e.can(capability)]

    def _route_for(self, name: str) -> RouteSettings | None:
        exact = next((r for r in self._routes if r.model_pattern == name), None)
        if exact is not None:
            return exact
        return next((r for r in self._routes if fnmatch.fnmatchcase(name, r.model_pattern)), None)

    def _route_resolution(
        self, route: RouteSettings, name: str, entry: ModelEntry | None
    ) -> Resolution:
        options = []
        for choice in route.providers:
            provider = self._providers.get(choice.provider)
            if provider is None:
                continue
            upstream = choice.model or (entry.target.upstream_model if entry else name)
            # A model the catalog knows at that provider is called through its own wire.
            known = self._by_target.get((provider.name, upstream))
            options.append(
                TargetOption(
                    Target(provider, upstream, known.target.wire if known else None),
                    self._capabilities(provider, upstream, choice.capabilities),
                    choice.weight,
                    choice.canary,
                )
            )
        return Resolution(
            name=entry.name if entry else name,
            options=tuple(options),
            strategy=route.strategy,
            constraints=entry.constraints if entry else ModelConstraints(),
            url_policy=route.url_policy
            or (entry.url_policy if entry else self._default_url_policy),
            route_id=route.id,
            canary_percent=route.canary_percent,
        )

    def _capabilities(
        self, provider: ProviderSettings, upstream: str, declared: Iterable[str] | None
    ) -> frozenset[str]:
        # The catalog's entry for that provider and model, else the kind's known models,
        # else what the route itself declares; unknown means text only.
        entry = self._by_target.get((provider.name, upstream))
        if entry is not None:
            return entry.capabilities
        known = known_capabilities(provider.kind, upstream)
        if known is None:
            known = frozenset(declared or ())
        return carried_capabilities(provider.kind, upstream, known)


def _entry(model: ModelSettings, provider: ProviderSettings, url_policy: UrlPolicy) -> ModelEntry:
    upstream = model.upstream_model or model.name
    capabilities = carried_capabilities(
        provider.kind,
        upstream,
        frozenset(model.capabilities)
        if model.capabilities is not None
        else known_capabilities(provider.kind, upstream) or frozenset(),
        model.wire,
    )
    return ModelEntry(
        name=model.name,
        target=Target(provider, upstream, model.wire),
        capabilities=capabilities,
        constraints=model.constraints,
        url_policy=model.url_policy or url_policy,
        aliases=model.aliases,
    )
