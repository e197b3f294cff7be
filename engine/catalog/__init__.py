"""The workspace catalog: a DuckDB file the engine alone writes (see ``store.py`` for the one-writer rule)."""

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
