"""The typed bundle of long-lived objects the endpoints use, built once per app."""

from __future__ import annotations

from dataclasses import dataclass

from aperture.pipeline import Pipeline, build_pipeline
from aperture.routing.catalog import Catalog
from aperture.routing.dispatch import Dispatcher
from aperture.settings import Settings
from aperture.upstream import UpstreamClient

__all__ = ["Services"]


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    catalog: Catalog
    pipeline: Pipeline
    dispatcher: Dispatcher
    client: UpstreamClient

    @classmethod
    def build(cls, settings: Settings, client: UpstreamClient) -> Services:
        catalog = Catalog.from_settings(settings)
        return cls(
            settings=settings,
            catalog=catalog,
            pipeline=build_pipeline(catalog, settings.images),
            dispatcher=Dispatcher(client),
            client=client,
        )
