"""The current catalog, swapped whole when config documents change (no restart)."""

from __future__ import annotations

from aperture.routing.catalog import Catalog

__all__ = ["LiveCatalog"]


class LiveCatalog:
    """Holds the catalog every request reads; a swap is one attribute assignment, so a
    request sees either the old catalog or the new one, never a mix."""

    def __init__(self, catalog: Catalog) -> None:
        self.current = catalog

    def replace(self, catalog: Catalog) -> None:
        self.current = catalog
