"""Read-only queries of a workspace: through its engine when one runs, else straight from the catalog file.

Both ways are one :class:`WorkspaceReader`: the engine's client, or a :class:`CatalogReader` over the catalog
opened read-only (an empty one in memory when the workspace has no catalog yet).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from engine.catalog.runs_index import CATALOG_FILE, read_index, select_runs
from engine.daemon.record import live_record

if TYPE_CHECKING:
    from engine.api import Adapter, Comparison, EvalResult, Metrics, Run, RunDetail, Study, Summary, Trial
    from engine.catalog import Catalog

T = TypeVar("T")
BUSY_WAIT = 15.0  # seconds to keep trying while an engine starts or stops


class WorkspaceReader(Protocol):
    """What the CLI reads of a workspace; :class:`engine.client.EngineClient` and :class:`CatalogReader` answer
    it alike."""

    def runs(
        self, *, kind: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[Run]: ...

    def run(self, run_id: str) -> RunDetail: ...

    def compare(self, run_ids: list[str]) -> Comparison: ...

    def summary(self) -> Summary: ...

    def metrics(
        self, run_id: str, names: list[str] | None = None, *, max_points: int | None = None
    ) -> Metrics: ...

    def run_evaluations(self, run_id: str) -> list[EvalResult]: ...

    def adapters(self, base: str | None = None) -> list[Adapter]: ...

    def adapter(self, name: str) -> Adapter: ...

    def studies(self) -> list[Study]: ...

    def study_trials(self, name: str) -> list[Trial]: ...


class CatalogReader:
    """A :class:`WorkspaceReader` over a catalog: the rows the engine's routes would answer."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def runs(
        self, *, kind: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[Run]:
        return cast("list[Run]", self.catalog.list_runs(kind=kind, status=status, limit=limit))

    def run(self, run_id: str) -> RunDetail:
        return cast("RunDetail", self.catalog.get_run(run_id))

    def compare(self, run_ids: list[str]) -> Comparison:
        return cast("Comparison", self.catalog.compare_runs(run_ids))

    def summary(self) -> Summary:
        return cast("Summary", self.catalog.summary())

    def metrics(
        self, run_id: str, names: list[str] | None = None, *, max_points: int | None = None
    ) -> Metrics:
        curves = self.catalog.metrics(run_id, names, max_points=max_points)
        return {name: [[step, value] for step, value in points] for name, points in curves.items()}

    def run_evaluations(self, run_id: str) -> list[EvalResult]:
        return cast("list[EvalResult]", self.catalog.run_evaluations(run_id))

    def adapters(self, base: str | None = None) -> list[Adapter]:
        return cast("list[Adapter]", self.catalog.list_adapters(base))

    def adapter(self, name: str) -> Adapter:
        return cast("Adapter", self.catalog.get_adapter(name))

    def studies(self) -> list[Study]:
        return cast("list[Study]", self.catalog.list_studies())

    def study_trials(self, name: str) -> list[Trial]:
        return cast("list[Trial]", self.catalog.study_trials(name))


def read(workspace: Path, call: Callable[[WorkspaceReader], T]) -> T:
    """``call`` answered by the workspace's engine when one runs, else by its catalog opened read-only.

    DuckDB admits one writer process, the engine: while it runs we ask it; otherwise we open the file
    read-only. An engine that is starting or stopping holds the file without answering yet (or any more), so
    we look again until one of the two ways works.
    """
    from engine.catalog import Catalog, CatalogBusy  # DuckDB loads only when the catalog itself is read

    deadline = time.monotonic() + BUSY_WAIT
    while True:
        record = live_record(workspace)
        if record is not None:
            from engine.client import EngineClient, EngineUnavailable  # httpx loads only when an engine runs

            try:
                with EngineClient(record) as client:
                    return call(client)
            except EngineUnavailable:  # it is stopping: its record goes next, then its hold on the file
                if time.monotonic() > deadline:
                    raise
        elif not (workspace / CATALOG_FILE).is_file():
            with Catalog.empty() as catalog:
                return call(CatalogReader(catalog))
        else:
            try:
                with Catalog.open(workspace, read_only=True) as catalog:
                    return call(CatalogReader(catalog))
            except CatalogBusy:  # an engine is starting (its record comes next) or stopping
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.05)


def list_runs(workspace: Path, **filters: Any) -> list[Run]:
    """Runs, newest first: from the runs index the catalog's writer keeps beside it (neither the engine nor
    DuckDB needed), else as :func:`read` answers them."""
    runs = read_index(workspace)
    if runs is not None:
        return cast("list[Run]", select_runs(runs, **filters))
    return read(workspace, lambda reader: reader.runs(**filters))
