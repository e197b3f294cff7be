"""The workspace catalog (``<workspace>/workspace.duckdb``): configs, tokenizers, datasets, runs and their history.

DuckDB lets one process hold the file read-write. That process is the engine, the workspace's only writer; every
other process asks the engine, or opens the catalog with ``read_only=True`` only while no engine is running. Each
write is one transaction, so a crash never leaves half of one behind.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from engine.catalog.ingest import FINISHED_STATUSES, RUN_STATUSES, EventBatch, events_to_batch
from engine.catalog.runs_index import CATALOG_FILE, RunsIndexWriter
from engine.catalog.schema import SCHEMA_VERSION, TIMESTAMP_PARAM, check_not_newer, migrate, schema_version
from engine.errors import DiskFullError, LLModelError, NotFoundError, first_line
from engine.fileio import disk_full, out_of_space

CONFIG_KINDS = ("model", "train")
# Tables whose rows belong to one run, keyed by run_id.
RUN_TABLES = (
    "metrics",
    "samples",
    "checkpoints",
    "evaluations",
    "attention_snapshots",
    "eval_results",
    "event_offsets",
)
_RUN_FIELDS = frozenset(
    {"status", "step", "total_steps", "metrics", "info", "error", "pid", "pid_start", "started", "finished"}
)
_TS = TIMESTAMP_PARAM
_RUN_COLUMNS = (
    "id, kind, status, parent_id, run_dir, epoch(created) AS created, epoch(started) AS started, "
    "epoch(finished) AS finished, step, total_steps, metrics, info, error, pid, pid_start"
)


class CatalogBusy(LLModelError):
    """Another process holds the catalog file (DuckDB admits one writer, or readers only)."""


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model": {"d_model": 64}}`` → ``{"model.d_model": 64}``; lists stay values."""
    if not isinstance(data, dict):
        return {prefix: data} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


class Catalog:
    """One open catalog; safe to share between the engine's threads (calls are serialised by a lock)."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, path: Path, *, read_only: bool) -> None:
        self._conn = conn
        self.path = path
        self.read_only = read_only
        self._lock = threading.RLock()
        self._index: RunsIndexWriter | None = (
            None  # the runs list as JSON, kept by the writer (runs_index.py)
        )

    # -- opening ----------------------------------------------------------------------------------

    @classmethod
    def open(cls, workspace_dir: str | Path, *, read_only: bool = False) -> Catalog:
        """Open ``<workspace_dir>/workspace.duckdb``; a writable open creates and migrates it."""
        path = Path(workspace_dir) / CATALOG_FILE
        if read_only and not path.is_file():
            raise LLModelError(
                f"no catalog at {path} yet; it is created when the engine first opens this workspace"
            )
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as err:
            if "lock" in str(err).lower():
                holder = re.search(r"PID (\d+)", str(err))
                pid = f" (pid {holder.group(1)})" if holder else ""
                raise CatalogBusy(
                    f"catalog {path} is held by another process{pid}, "
                    "normally this workspace's engine; ask the engine instead, or stop it with `llmodel engine stop`"
                ) from None
            raise LLModelError(f"cannot open the catalog {path}: {first_line(err)}") from None
        try:
            if read_only:
                version = schema_version(conn)
                check_not_newer(version, str(path))
                if version < SCHEMA_VERSION:
                    raise LLModelError(
                        f"catalog {path} has schema version {version}, older than this LLModel "
                        f"({SCHEMA_VERSION}); start the engine once to upgrade it"
                    )
            else:
                migrate(conn, where=str(path))
        except BaseException:
            conn.close()
            raise
        catalog = cls(conn, path, read_only=read_only)
        if not read_only:
            catalog._index = RunsIndexWriter(path.parent, catalog.list_runs())
        return catalog

    @classmethod
    def empty(cls) -> Catalog:
        """An empty catalog in memory, read-only: what a workspace without a catalog file holds."""
        conn = duckdb.connect(":memory:")
        migrate(conn)
        return cls(conn, Path(":memory:"), read_only=True)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._index is not None:  # closing checkpoints the file: the index must stay the newer one
                self._index.write()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, runs: tuple[str, ...] = ()) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction; ``runs`` names the runs it changes, whose rows the runs index then refreshes (the
        index is rewritten after every commit, so it stays newer than the catalog file)."""
        if self.read_only:
            raise LLModelError(f"catalog {self.path} is open read-only; changes go through the engine")
        with self._lock:
            self._conn.execute("BEGIN TRANSACTION")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except duckdb.Error as error:  # DuckDB rolls the transaction back and stays usable
                if not out_of_space(error):
                    raise
                last_good = "this change was rolled back and the catalog holds every one before it"
                raise disk_full(self.path, 0, last_good) from None
            if self._index is None:
                return
            try:
                if runs:
                    placeholders = ", ".join("?" * len(runs))
                    self._index.update(
                        list(runs), self._run_rows(f"WHERE id IN ({placeholders})", list(runs))
                    )
                else:  # the commit made the catalog file newer: rewrite the (unchanged) index after it
                    self._index.write()
            except DiskFullError as full:
                raise full.with_last_good(
                    "the catalog holds this change; the runs list beside it catches up at the next write"
                ) from None

    def _rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._conn.execute(sql, params or [])
            names = [column[0] for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        with self._lock:
            row = self._conn.execute(sql, params or []).fetchone()
        return row[0] if row else None

    def _require_run(self, run_id: str, conn: duckdb.DuckDBPyConnection | None = None) -> None:
        """Raise :class:`NotFoundError` unless the run is recorded (looked up in ``conn``'s transaction, if given)."""
        if conn is None:
            found = self._scalar("SELECT count(*) FROM runs WHERE id = ?", [run_id])
        else:
            found = _count(conn, "SELECT count(*) FROM runs WHERE id = ?", [run_id])
        if not found:
            raise _no_run(run_id)

    @staticmethod
    def _decode(row: dict[str, Any], *columns: str) -> dict[str, Any]:
        for column in columns:
            if isinstance(row.get(column), str):
                row[column] = json.loads(row[column])
        return row

    # -- configs, tokenizers, datasets --------------------------------------------------------------

    def register_config(self, name: str, path: str | Path, kind: str, data: dict[str, Any]) -> None:
        """Record (or replace) a model or training config saved at ``path``."""
        if kind not in CONFIG_KINDS:
            raise ValueError(f"config kind must be one of {CONFIG_KINDS}, not {kind!r}")
        with self._transaction() as conn:
            conn.execute(
                f"INSERT INTO configs VALUES (?, ?, ?, ?, {_TS}) ON CONFLICT (name) DO UPDATE SET "
                "path = excluded.path, kind = excluded.kind, data = excluded.data",
                [name, str(path), kind, _json(data), time.time()],
            )

    def register_tokenizer(
        self, name: str, path: str | Path, vocab_size: int, sha256: str, meta: dict[str, Any]
    ) -> None:
        """Record (or replace) a trained tokenizer."""
        with self._transaction() as conn:
            conn.execute(
                f"INSERT INTO tokenizers VALUES (?, ?, ?, ?, ?, {_TS}) ON CONFLICT (name) DO UPDATE SET "
                "path = excluded.path, vocab_size = excluded.vocab_size, sha256 = excluded.sha256, "
                "meta = excluded.meta",
                [name, str(path), int(vocab_size), sha256, _json(meta), time.time()],
            )

    def register_dataset(self, name: str, path: str | Path, meta: dict[str, Any]) -> None:
        """Record (or replace) a prepared dataset from its ``meta.json`` contents (``DatasetMeta.to_dict()``)."""

        def tokens(split: str) -> int | None:
            counts = meta.get(split)
            return int(counts["tokens"]) if isinstance(counts, dict) and "tokens" in counts else None

        vocab = meta.get("vocab_size")
        with self._transaction() as conn:
            conn.execute(
                f"INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, {_TS}) ON CONFLICT (name) DO UPDATE SET "
                "path = excluded.path, tokenizer = excluded.tokenizer, vocab_size = excluded.vocab_size, "
                "train_tokens = excluded.train_tokens, val_tokens = excluded.val_tokens, meta = excluded.meta",
                [
                    name,
                    str(path),
                    meta.get("tokenizer"),
                    int(vocab) if vocab is not None else None,
                    tokens("train"),
                    tokens("val"),
                    _json(meta),
                    time.time(),
                ],
            )

    def register_adapter(self, name: str, path: str | Path, meta: dict[str, Any]) -> None:
        """Record (or replace) an adapter from its ``llmodel_adapter.json`` contents."""
        settings = meta.get("settings", {})
        with self._transaction() as conn:
            conn.execute(
                f"INSERT INTO adapters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {_TS}) ON CONFLICT (name) DO UPDATE "
                "SET path = excluded.path, run_id = excluded.run_id, method = excluded.method, "
                "base_checkpoint = excluded.base_checkpoint, base_sha256 = excluded.base_sha256, "
                "rank = excluded.rank, alpha = excluded.alpha, targets = excluded.targets, "
                "dataset = excluded.dataset, metrics = excluded.metrics, meta = excluded.meta",
                [
                    name,
                    str(path),
                    meta.get("run_id"),
                    meta.get("method", "lora"),
                    str(meta.get("base_checkpoint", "")),
                    str(meta.get("base_sha256", "")),
                    int(settings.get("rank", 0)),
                    float(settings.get("alpha", 0.0)),
                    _json(meta.get("targets") or settings.get("target_modules", [])),
                    meta.get("dataset"),
                    _json(meta.get("metrics", {})),
                    _json(meta),
                    time.time(),
                ],
            )

    def list_adapters(self, base_checkpoint: str | None = None) -> list[dict[str, Any]]:
        """The workspace's adapters, optionally only those of one base checkpoint."""
        where, params = ("WHERE base_checkpoint = ?", [base_checkpoint]) if base_checkpoint else ("", [])
        rows = self._rows(
            "SELECT name, path, run_id, method, base_checkpoint, base_sha256, rank, alpha, targets, dataset, "
            f"metrics, meta, epoch(created) AS created FROM adapters {where} ORDER BY name",
            params,
        )
        return [self._decode(row, "targets", "metrics", "meta") for row in rows]

    def get_adapter(self, name: str) -> dict[str, Any]:
        found = [row for row in self.list_adapters() if row["name"] == name]
        if not found:
            raise NotFoundError(f"no adapter named {name}; see `llmodel adapters list`")
        return found[0]

    def remove_adapter(self, name: str) -> None:
        with self._transaction() as conn:
            if not _count(conn, "SELECT count(*) FROM adapters WHERE name = ?", [name]):
                raise NotFoundError(f"no adapter named {name}; see `llmodel adapters list`")
            conn.execute("DELETE FROM adapters WHERE name = ?", [name])

    def list_configs(self, kind: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
        rows = self._rows(
            f"SELECT name, path, kind, data, epoch(created) AS created FROM configs {where} ORDER BY name",
            params,
        )
        return [self._decode(row, "data") for row in rows]

    def list_tokenizers(self) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT name, path, vocab_size, sha256, meta, epoch(created) AS created FROM tokenizers ORDER BY name"
        )
        return [self._decode(row, "meta") for row in rows]

    def list_datasets(self) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT name, path, tokenizer, vocab_size, train_tokens, val_tokens, meta, epoch(created) AS created "
            "FROM datasets ORDER BY name"
        )
        return [self._decode(row, "meta") for row in rows]

    # -- runs ---------------------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        kind: str,
        run_dir: str | Path,
        config: dict[str, Any],
        *,
        parent_id: str | None = None,
        status: str = "queued",
        total_steps: int | None = None,
    ) -> None:
        """Record a new run; ``config`` is its resolved model + training config."""
        if status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {RUN_STATUSES}, not {status!r}")
        now = time.time()
        with self._transaction(runs=(run_id,)) as conn:
            if _count(conn, "SELECT count(*) FROM runs WHERE id = ?", [run_id]):
                raise LLModelError(f"a run named {run_id} already exists; pick another id")
            conn.execute(
                "INSERT INTO runs (id, kind, status, parent_id, run_dir, config, created, started, total_steps) "
                f"VALUES (?, ?, ?, ?, ?, ?, {_TS}, {_TS}, ?)",
                [
                    run_id,
                    kind,
                    status,
                    parent_id,
                    str(run_dir),
                    _json(config),
                    now,
                    now if status == "running" else None,
                    total_steps,
                ],
            )

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set some of a run's columns: status, step, total_steps, metrics (replaced), info, error, pid,
        started, finished (unix seconds). A "running" status stamps ``started`` once; a final status stamps
        ``finished`` unless given."""
        unknown = set(fields) - _RUN_FIELDS
        if unknown:
            raise TypeError(
                f"update_run() got unknown fields {sorted(unknown)}; allowed: {sorted(_RUN_FIELDS)}"
            )
        status = fields.get("status")
        if status is not None and status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {RUN_STATUSES}, not {status!r}")
        now = time.time()
        if status == "running":
            fields.setdefault("finished", None)
        elif status in FINISHED_STATUSES:
            fields.setdefault("finished", now)
        sets, params = [], []
        for name, value in fields.items():
            if name in ("started", "finished"):
                sets.append(f"{name} = {_TS}")
            elif name in ("metrics", "info"):
                sets.append(f"{name} = ?")
                value = _json(value or {})
            else:
                sets.append(f"{name} = ?")
            params.append(value)
        if status == "running" and "started" not in fields:
            sets.append(f"started = coalesce(started, {_TS})")
            params.append(now)
        if not sets:
            return
        with self._transaction(runs=(run_id,)) as conn:
            self._require_run(run_id, conn)
            conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", [*params, run_id])

    def event_offset(self, run_id: str) -> int:
        """How many lines of the run's ``events.jsonl`` are already in the catalog."""
        value = self._scalar('SELECT "offset" FROM event_offsets WHERE run_id = ?', [run_id])
        return int(value or 0)

    def ingest_events(self, run_id: str, events: list[dict[str, Any]], new_offset: int) -> int:
        """Record ``events`` — the lines of ``events.jsonl`` before line ``new_offset`` not yet ingested — in one
        transaction with the new offset; returns how many were applied. Calling it again with events already
        counted in the stored offset does nothing, so replaying after a crash never duplicates.

        A "running" status event at step S marks a (re)start from S: metrics, evaluations, samples and attention
        snapshots recorded after S belong to an abandoned timeline and are dropped, so a resumed run has one curve."""
        with self._transaction(runs=(run_id,)) as conn:
            row = conn.execute(
                'SELECT r.metrics, r.info, o."offset" FROM runs r LEFT JOIN event_offsets o ON o.run_id = r.id '
                "WHERE r.id = ?",
                [run_id],
            ).fetchone()
            if row is None:
                raise _no_run(run_id)
            stored = int(row[2] or 0)
            if new_offset <= stored:
                return 0
            # A caller that re-reads from an older offset passes events we already have: skip those. (When it
            # reads from the stored offset, unreadable lines make the list shorter, never longer, so this is safe.)
            already = stored - (new_offset - len(events))
            if already > 0:
                events = events[already:]
            batch = events_to_batch(events, now=time.time())
            self._write_batch(conn, run_id, batch)
            self._update_run(conn, run_id, batch, metrics=json.loads(row[0]), info=json.loads(row[1]))
            self._store_offset(conn, run_id, new_offset)
        return len(events)

    @staticmethod
    def _write_batch(conn: duckdb.DuckDBPyConnection, run_id: str, batch: EventBatch) -> None:
        if batch.restart_step is not None:
            for table in ("metrics", "evaluations", "samples", "attention_snapshots"):
                conn.execute(
                    f"DELETE FROM {table} WHERE run_id = ? AND step > ?", [run_id, batch.restart_step]
                )
        # Many rows in one statement: lists bound as parameters and unnested in SQL.
        for table, time_column, rows in (
            ("metrics", "time", batch.metrics),
            ("evaluations", "created", batch.evaluations),
        ):
            if rows:
                steps, times, names, values = (list(column) for column in zip(*rows, strict=True))
                conn.execute(
                    f"INSERT INTO {table} (run_id, step, {time_column}, name, value) "
                    "SELECT ?, s, make_timestamp(CAST(t * 1000000 AS BIGINT)), n, v "
                    "FROM (SELECT unnest(?::BIGINT[]) AS s, unnest(?::DOUBLE[]) AS t, "
                    "unnest(?::VARCHAR[]) AS n, unnest(?::DOUBLE[]) AS v)",
                    [run_id, steps, times, names, values],
                )
        if batch.samples:
            conn.executemany(
                f"INSERT INTO samples VALUES (?, ?, {_TS}, ?, ?)",
                [[run_id, step, when, prompt, text] for step, when, prompt, text in batch.samples],
            )
        if batch.new_best:
            conn.execute("UPDATE checkpoints SET best = false WHERE run_id = ? AND best", [run_id])
        if batch.checkpoints:
            conn.executemany(
                f"INSERT INTO checkpoints VALUES (?, ?, ?, ?, {_TS}) ON CONFLICT (run_id, step) DO UPDATE SET "
                "path = excluded.path, best = excluded.best, created = excluded.created",
                [[run_id, step, path, best, when] for step, (path, best, when) in batch.checkpoints.items()],
            )
        if batch.attention:
            conn.executemany(
                f"INSERT INTO attention_snapshots VALUES (?, ?, ?, ?, ?, ?, {_TS})",
                [[run_id, *row] for row in batch.attention],
            )
        if batch.results:
            conn.executemany(
                f"INSERT INTO eval_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {_TS})",
                [[run_id, *row] for row in batch.results],
            )
        for name, storage, settings, when in batch.studies:
            conn.execute(
                f"INSERT INTO studies VALUES (?, ?, ?, ?, {_TS}, {_TS}) ON CONFLICT (name) DO UPDATE SET "
                "storage = excluded.storage, run_id = excluded.run_id, settings = excluded.settings, "
                "updated = excluded.updated",
                [name, storage, run_id, settings, when, when],
            )
        if batch.trials:
            conn.executemany(
                f"INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, {_TS}) ON CONFLICT (study, number) DO UPDATE SET "
                "run_id = coalesce(excluded.run_id, trials.run_id), state = excluded.state, params = "
                "excluded.params, objectives = excluded.objectives, reason = excluded.reason, updated = excluded.updated",
                [list(row) for row in batch.trials.values()],
            )

    @staticmethod
    def _update_run(
        conn: duckdb.DuckDBPyConnection,
        run_id: str,
        batch: EventBatch,
        *,
        metrics: dict[str, Any],
        info: dict[str, Any],
    ) -> None:
        sets, params = [], []
        for name, value in batch.run.items():
            if name == "started":
                sets.append(f"started = coalesce(started, {_TS})")
            elif name == "finished":
                sets.append(f"finished = {_TS}")
            else:
                sets.append(f"{name} = ?")
            params.append(value)
        if batch.metrics_update:
            sets.append("metrics = ?")
            params.append(_json({**metrics, **batch.metrics_update}))
        if batch.info_update:
            sets.append("info = ?")
            params.append(_json({**info, **batch.info_update}))
        if sets:
            conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", [*params, run_id])

    @staticmethod
    def _store_offset(conn: duckdb.DuckDBPyConnection, run_id: str, offset: int) -> None:
        conn.execute(
            'INSERT INTO event_offsets VALUES (?, ?) ON CONFLICT (run_id) DO UPDATE SET "offset" = excluded."offset"',
            [run_id, offset],
        )

    def list_runs(
        self, *, kind: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Runs, newest first, with their latest metrics (``metrics``, plus ``loss`` and ``val_loss`` up front)."""
        where: list[str] = []
        params: list[Any] = []
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        sql = ("WHERE " + " AND ".join(where)) if where else ""
        sql += " ORDER BY created DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._run_rows(sql, params)

    def _run_rows(self, clauses: str, params: list[Any]) -> list[dict[str, Any]]:
        """Rows as ``list_runs`` gives them, for ``SELECT ... FROM runs <clauses>``."""
        runs = []
        for row in self._rows(f"SELECT {_RUN_COLUMNS} FROM runs {clauses}", params):
            self._decode(row, "metrics", "info")
            row["loss"] = row["metrics"].get("loss")
            row["val_loss"] = row["metrics"].get("val_loss")
            runs.append(row)
        return runs

    def get_run(self, run_id: str, *, samples: int = 5) -> dict[str, Any]:
        """Everything about one run: its row, config, checkpoints and last ``samples`` samples."""
        rows = self._rows(f"SELECT {_RUN_COLUMNS}, config FROM runs WHERE id = ?", [run_id])
        if not rows:
            raise _no_run(run_id)
        run = self._decode(rows[0], "metrics", "info", "config")
        run["checkpoints"] = self.checkpoints(run_id)
        run["samples"] = self.samples(run_id, samples)
        run["event_offset"] = self.event_offset(run_id)
        return run

    def run_ids_with_status(self, *statuses: str) -> list[str]:
        """Ids of the runs in any of ``statuses``, oldest first (e.g. the running ones to re-attach)."""
        if not statuses:
            return []
        rows = self._rows(
            "SELECT id FROM runs WHERE list_contains(?::VARCHAR[], status) ORDER BY created, id",
            [list(statuses)],
        )
        return [row["id"] for row in rows]

    def remove_run(self, run_id: str) -> None:
        """Forget a run and every row that belongs to it (its folder on disk is the caller's business)."""
        with self._transaction(runs=(run_id,)) as conn:
            self._require_run(run_id, conn)
            for table in RUN_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            conn.execute("DELETE FROM runs WHERE id = ?", [run_id])

    # -- a run's history ----------------------------------------------------------------------------

    def metrics(
        self, run_id: str, names: list[str] | None = None, *, max_points: int | None = None
    ) -> dict[str, list[tuple[int, float]]]:
        """Each metric's curve as ``(step, value)`` pairs in step order. With ``max_points`` a longer curve is
        averaged into step buckets, keeping its first and last points exactly, so it has at most that many."""
        self._require_run(run_id)
        if max_points is not None and max_points < 2:
            raise ValueError("max_points must be at least 2 (a curve's first and last points)")
        filter_sql = " AND list_contains(?::VARCHAR[], name)" if names is not None else ""
        params: list[Any] = [run_id] + ([list(names)] if names is not None else [])
        if max_points is None:
            sql = f"SELECT name, step, value FROM metrics WHERE run_id = ?{filter_sql} ORDER BY name, step"
        else:
            # Curves longer than max_points: first and last rows as they are, the rows between averaged into
            # max_points - 2 buckets of equal step width.
            sql = f"""
                WITH m AS (SELECT name, step, value FROM metrics WHERE run_id = ?{filter_sql}),
                bounds AS (SELECT name, min(step) AS lo, max(step) AS hi, count(*) AS n FROM m GROUP BY name),
                j AS (SELECT m.name, m.step, m.value, lo, hi, n FROM m JOIN bounds USING (name))
                SELECT name, step, value FROM j WHERE n <= $k + 2 OR step = lo OR step = hi
                UNION ALL
                SELECT name, CAST(round(avg(step)) AS BIGINT) AS step, avg(value) AS value
                FROM j WHERE n > $k + 2 AND step > lo AND step < hi AND $k > 0
                GROUP BY name, (step - lo - 1) * $k // (hi - lo - 1)
                ORDER BY name, step
            """
            sql = sql.replace("$k", str(int(max_points) - 2))
        curves: dict[str, list[tuple[int, float]]] = {}
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        for name, step, value in rows:
            curves.setdefault(name, []).append((int(step), value))
        return curves

    def samples(self, run_id: str, limit: int = 5) -> list[dict[str, Any]]:
        """The run's last ``limit`` samples, oldest first."""
        self._require_run(run_id)
        rows = self._rows(
            "SELECT step, epoch(time) AS time, prompt, text FROM samples WHERE run_id = ? "
            "ORDER BY step DESC, time DESC LIMIT ?",
            [run_id, int(limit)],
        )
        return rows[::-1]

    def checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        """The checkpoints the run reported, in step order (pruned ones included: the catalog hears of saves only)."""
        self._require_run(run_id)
        return self._rows(
            "SELECT step, path, best, epoch(created) AS created FROM checkpoints WHERE run_id = ? ORDER BY step",
            [run_id],
        )

    def evaluations(self, run_id: str) -> list[dict[str, Any]]:
        """The run's evaluation results (``eval`` events), in step order."""
        self._require_run(run_id)
        return self._rows(
            "SELECT step, name, value, epoch(created) AS created FROM evaluations WHERE run_id = ? "
            "ORDER BY step, name",
            [run_id],
        )

    def attention_snapshots(self, run_id: str) -> list[dict[str, Any]]:
        """The run's saved attention maps (files at ``path``), in step order."""
        self._require_run(run_id)
        rows = self._rows(
            "SELECT step, path, layers, heads, tokens, epoch(created) AS created FROM attention_snapshots "
            "WHERE run_id = ? ORDER BY step",
            [run_id],
        )
        return [self._decode(row, "tokens") for row in rows]

    def compare_runs(self, run_ids: list[str]) -> dict[str, Any]:
        """Runs side by side: each one's config as dotted keys and its final metrics, plus the keys that differ."""
        ids = list(dict.fromkeys(run_ids))
        runs: dict[str, dict[str, Any]] = {}
        for run_id in ids:
            rows = self._rows(
                "SELECT kind, status, step, config, metrics, run_dir FROM runs WHERE id = ?", [run_id]
            )
            if not rows:
                raise _no_run(run_id)
            row = self._decode(rows[0], "config", "metrics")
            row["config"] = _flatten(row["config"])
            row["evaluations"] = self._latest_evaluations(run_id, row.pop("run_dir"))
            runs[run_id] = row
        missing = object()
        keys = sorted({key for run in runs.values() for key in run["config"]})
        differing = []
        for key in keys:
            values = [run["config"].get(key, missing) for run in runs.values()]
            if any(value is missing or value != values[0] for value in values):
                differing.append(key)
        return {"runs": runs, "differing": differing}

    def _latest_evaluations(self, run_id: str, run_dir: str) -> dict[str, float]:
        """``task/metric`` → the newest value measured by this run or on one of its checkpoints."""
        latest: dict[str, float] = {}
        for row in [
            *self.eval_results(run_id=run_id),
            *self.eval_results(checkpoint_prefix=run_dir.rstrip("/") + "/"),
        ]:
            latest.setdefault(f"{row['task']}/{row['metric']}", row["value"])
        return latest

    def run_evaluations(self, run_id: str) -> list[dict[str, Any]]:
        """The evaluation results this run measured, or that were measured on its checkpoints."""
        run_dir = self.get_run(run_id)["run_dir"]
        return self.eval_results(run_id=run_id) + self.eval_results(
            checkpoint_prefix=run_dir.rstrip("/") + "/"
        )

    def eval_results(
        self, run_id: str | None = None, checkpoint_prefix: str | None = None
    ) -> list[dict[str, Any]]:
        """Evaluation results, newest first: of one evaluation run, or of checkpoints under a folder."""
        clauses, params = [], []
        if run_id:
            clauses.append("run_id = ?")
            params.append(run_id)
        if checkpoint_prefix:
            clauses.append("starts_with(checkpoint, ?)")
            params.append(checkpoint_prefix)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._rows(
            "SELECT run_id, model, checkpoint, step, adapter, task, metric, value, stderr, n, chance, settings, "
            f"epoch(created) AS created FROM eval_results {where} ORDER BY created DESC, task, metric",
            params,
        )
        return [self._decode(row, "settings") for row in rows]

    def list_studies(self) -> list[dict[str, Any]]:
        """The workspace's studies, newest first, with how many of their trials are in each state."""
        rows = self._rows(
            "SELECT s.name, s.storage, s.run_id, s.settings, epoch(s.created) AS created, "
            "epoch(s.updated) AS updated, count(t.number) AS trials, "
            "count(t.number) FILTER (WHERE t.state = 'complete') AS complete, "
            "count(t.number) FILTER (WHERE t.state = 'running') AS running "
            "FROM studies s LEFT JOIN trials t ON t.study = s.name "
            "GROUP BY s.name, s.storage, s.run_id, s.settings, s.created, s.updated ORDER BY s.updated DESC"
        )
        return [self._decode(row, "settings") for row in rows]

    def study_trials(self, study: str) -> list[dict[str, Any]]:
        """A study's trials as this workspace's workers ran them, in trial order."""
        if not self._scalar("SELECT count(*) FROM studies WHERE name = ?", [study]):
            raise NotFoundError(f"no study named {study} in this workspace; see `llmodel evolve list`")
        rows = self._rows(
            "SELECT number, run_id, state, params, objectives, reason, epoch(updated) AS updated FROM trials "
            "WHERE study = ? ORDER BY number",
            [study],
        )
        return [self._decode(row, "params", "objectives") for row in rows]

    def summary(self) -> dict[str, Any]:
        """How many configs, tokenizers, datasets and runs (by status) the workspace holds."""
        counts = self._rows(
            "SELECT (SELECT count(*) FROM configs) AS configs, (SELECT count(*) FROM tokenizers) AS tokenizers, "
            "(SELECT count(*) FROM datasets) AS datasets, (SELECT count(*) FROM adapters) AS adapters"
        )[0]
        by_status = dict.fromkeys(RUN_STATUSES, 0)
        for row in self._rows("SELECT status, count(*) AS n FROM runs GROUP BY status"):
            by_status[row["status"]] = row["n"]
        return {**counts, "runs": by_status, "runs_total": sum(by_status.values())}


def _no_run(run_id: str) -> NotFoundError:
    return NotFoundError(f"no run named {run_id}; see `llmodel runs list`")


def _count(conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> int:
    row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0
