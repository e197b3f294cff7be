"""The workspace catalog: a DuckDB file the engine alone writes (see ``store.py`` for the one-writer rule).

The names load on first use, so ``engine.catalog.runs_index`` stays importable without loading DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import lazy_attributes

if TYPE_CHECKING:
    from engine.catalog.ingest import RUN_STATUSES
    from engine.catalog.schema import MIGRATIONS, SCHEMA_VERSION, migrate
    from engine.catalog.store import CATALOG_FILE, Catalog, CatalogBusy

__all__ = [
    "CATALOG_FILE",
    "MIGRATIONS",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "Catalog",
    "CatalogBusy",
    "migrate",
]

__getattr__ = lazy_attributes(
    __name__,
    {
        "RUN_STATUSES": "engine.catalog.ingest",
        "MIGRATIONS": "engine.catalog.schema",
        "SCHEMA_VERSION": "engine.catalog.schema",
        "migrate": "engine.catalog.schema",
        "CATALOG_FILE": "engine.catalog.runs_index",
        "Catalog": "engine.catalog.store",
        "CatalogBusy": "engine.catalog.store",
    },
)
