"""Keep the live catalog in step with the stored routes and models, on every instance.

Config-file routes and models seed the store once; from then on the store is the truth and
the admin API edits it. Each instance polls the stores' change counters (a cheap read) and
rebuilds its catalog when they move, so an edit applies everywhere within a second, without
a restart, and survives restarts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import TypeVar

import anyio
import msgspec

from aperture.routing.catalog import Catalog
from aperture.routing.live import LiveCatalog
from aperture.settings import ModelSettings, RouteSettings, Settings
from aperture.storage import DocumentStore, RecordExistsError, StorageError

__all__ = ["CatalogSync"]

log = logging.getLogger("aperture.routing")

T = TypeVar("T")

_encode = msgspec.json.Encoder().encode


class CatalogSync:
    def __init__(
        self,
        settings: Settings,
        routes: DocumentStore,
        models: DocumentStore,
        live: LiveCatalog,
    ) -> None:
        self._settings = settings
        self._routes = routes
        self._models = models
        self._live = live
        self._versions = (-1, -1)
        # One rebuild at a time: a poll that read the stores before an admin write must not
        # replace the catalog that write's own refresh just built.
        self._rebuilding = anyio.Lock()

    async def seed(self) -> None:
        """Write the config's routes and models that the store does not hold yet."""
        # One read instead of a write transaction per entry at every start; another instance
        # seeding at the same moment still meets ``RecordExistsError``.
        await self._seed(self._routes, [(route.id, route) for route in self._settings.routes])
        await self._seed(self._models, [(model.name, model) for model in self._settings.models])
        await self.refresh(force=True)

    @staticmethod
    async def _seed(store: DocumentStore, entries: Sequence[tuple[str, object]]) -> None:
        if not entries:
            return
        held = {doc.id for doc in await store.list()}
        for doc_id, entry in entries:
            if doc_id not in held:
                held.add(doc_id)  # the first of two with one name wins, as before
                with contextlib.suppress(RecordExistsError):
                    await store.put(doc_id, _encode(entry), mode="create")

    async def refresh(self, *, force: bool = False) -> None:
        """Rebuild the catalog if either store changed since the last build."""
        async with self._rebuilding:
            versions = (await self._routes.version(), await self._models.version())
            if versions == self._versions and not force:
                return
            routes = await _decoded(self._routes, RouteSettings)
            models = await _decoded(self._models, ModelSettings)
            catalog = Catalog.from_settings(self._settings, models=models, routes=routes)
            self._live.replace(catalog)
            self._versions = versions

    async def watch(self, interval_s: float = 0.5, timeout_s: float = 2.0) -> None:
        """Poll the change counters forever (a lifespan task).

        Each poll has a deadline: a database that stops answering must not wedge the poller,
        or the catalog would stay stale after the database comes back.
        """
        while True:
            await anyio.sleep(interval_s)
            # An outage keeps the last good catalog: requests keep being served meanwhile.
            try:
                with anyio.fail_after(timeout_s):
                    await self.refresh()
            except (StorageError, TimeoutError) as exc:
                log.debug("catalog not refreshed: %r", exc)
            except Exception:  # a poller that dies would freeze the catalog, or stop the app
                log.exception("catalog refresh failed")


async def _decoded(store: DocumentStore, kind: type[T]) -> Sequence[T]:
    decoded: list[T] = []
    for document in await store.list():
        try:
            decoded.append(msgspec.json.decode(document.body, type=kind))
        except msgspec.ValidationError as exc:
            # Written by an older or newer version: skipped, never fatal to the others.
            log.warning("skipping stored %s %r: %s", kind.__name__, document.id, exc)
    return decoded
