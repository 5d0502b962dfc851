"""The typed bundle of long-lived objects the endpoints use, built once per app."""

from __future__ import annotations

import os
from dataclasses import dataclass

from aperture.pipeline import Pipeline, build_pipeline
from aperture.routing.catalog import Catalog
from aperture.routing.dispatch import Dispatcher
from aperture.settings import Settings
from aperture.upstream import UpstreamClient
from aperture.upstream.fetch import FetchPolicy, ImageFetcher

__all__ = ["Services"]


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    catalog: Catalog
    pipeline: Pipeline
    dispatcher: Dispatcher
    client: UpstreamClient
    fetcher: ImageFetcher

    @classmethod
    def build(cls, settings: Settings, client: UpstreamClient) -> Services:
        """Build every service; must run inside the event loop (the app lifespan)."""
        catalog = Catalog.from_settings(settings)
        fetch = settings.images.fetch
        fetcher = ImageFetcher(
            FetchPolicy(
                timeout_s=fetch.timeout_s,
                connect_timeout_s=fetch.connect_timeout_s,
                max_redirects=fetch.max_redirects,
                max_bytes=settings.images.max_image_bytes,
                allow_private_hosts=fetch.allow_private_hosts,
                allow_http=fetch.allow_http,
            ),
            cache_bytes=fetch.cache_bytes,
        )
        return cls(
            settings=settings,
            catalog=catalog,
            pipeline=build_pipeline(catalog, settings.images, fetcher, os.cpu_count() or 1),
            dispatcher=Dispatcher(client),
            client=client,
            fetcher=fetcher,
        )

    async def close(self) -> None:
        await self.fetcher.close()
        await self.client.close()
