"""The typed bundle of long-lived objects the endpoints use, built once per app."""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from aperture.governance.keys import KeyRing
from aperture.metrics import Metrics
from aperture.pipeline import ImagePreparer, Pipeline, TargetLimits, build_pipeline
from aperture.routing.breaker import SharedBreakers
from aperture.routing.catalog import Catalog
from aperture.routing.dispatch import Dispatcher
from aperture.routing.live import LiveCatalog
from aperture.routing.retry import RetryPolicy
from aperture.routing.router import Router
from aperture.routing.sync import CatalogSync
from aperture.settings import Settings
from aperture.storage import Storage, open_storage
from aperture.storage.audit_writer import AuditWriter
from aperture.upstream import UpstreamClient
from aperture.upstream.fetch import FetchPolicy, ImageFetcher

__all__ = ["Services", "open_services"]


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    catalog: LiveCatalog
    sync: CatalogSync
    pipeline: Pipeline
    images: ImagePreparer
    router: Router
    client: UpstreamClient
    fetcher: ImageFetcher
    storage: Storage
    keys: KeyRing
    audit: AuditWriter
    metrics: Metrics

    @property
    def auth_required(self) -> bool:
        auth = self.settings.auth
        return auth is not None and auth.master_key is not None


async def open_services(settings: Settings, stack: AsyncExitStack, group: TaskGroup) -> Services:
    """Build every service inside the app lifespan; ``stack`` closes them in reverse order
    and ``group`` owns their background tasks (key-cache watcher, audit writer)."""
    storage = await open_storage(settings.storage.database, settings.storage.redis, migrate=True)
    stack.push_async_callback(storage.close)
    client = UpstreamClient.create()
    stack.push_async_callback(client.close)
    fetcher = _fetcher(settings)
    stack.push_async_callback(fetcher.close)
    auth = settings.auth
    master = auth.master_key if auth else None
    pepper = (auth.key_pepper if auth else None) or master or "aperture-open-gateway"
    keys = KeyRing(storage.keys, pepper.encode(), master)
    await keys.refresh(force=True)
    audit = AuditWriter(storage.audit, Path(settings.storage.spool_dir))
    await audit.start(group)
    stack.push_async_callback(audit.stop)
    group.start_soon(keys.watch)
    metrics = Metrics()
    breakers = SharedBreakers(storage.counters)
    router = Router(Dispatcher(client), breakers, RetryPolicy())
    metrics.watch_breakers(lambda: tuple(router.seen), breakers.state)
    catalog = LiveCatalog(Catalog.from_settings(settings))
    sync = CatalogSync(settings, storage.routes, storage.models, catalog)
    await sync.seed()
    group.start_soon(sync.watch)
    limiter = anyio.CapacityLimiter(os.cpu_count() or 1)
    target_limits = TargetLimits(settings.providers)
    return Services(
        settings=settings,
        catalog=catalog,
        sync=sync,
        pipeline=build_pipeline(catalog, settings.images, fetcher, limiter, target_limits),
        images=ImagePreparer(settings.images, limiter, target_limits),
        router=router,
        client=client,
        fetcher=fetcher,
        storage=storage,
        keys=keys,
        audit=audit,
        metrics=metrics,
    )


def _fetcher(settings: Settings) -> ImageFetcher:
    fetch = settings.images.fetch
    return ImageFetcher(
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
