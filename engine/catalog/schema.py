"""The catalog's tables and the ordered migrations that build them; a catalog records the versions applied."""

from __future__ import annotations

import time
from dataclasses import dataclass

import duckdb

from engine.errors import LLModelError


@dataclass(frozen=True)
class Migration:
    """One schema step: applied once, in order, inside the same transaction as its ``schema_version`` row."""

    version: int
    statements: tuple[str, ...]


# Times are TIMESTAMP in UTC (the API speaks unix seconds, like events' "time"); JSON columns hold what the
# engine wrote with json.dumps. No foreign keys: DuckDB cannot cascade, and remove_run deletes explicitly.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        (
            """CREATE TABLE configs (
                name VARCHAR PRIMARY KEY,
                path VARCHAR NOT NULL,
                kind VARCHAR NOT NULL,
                data JSON NOT NULL,
                created TIMESTAMP NOT NULL
            )""",
            """CREATE TABLE tokenizers (
                name VARCHAR PRIMARY KEY,
                path VARCHAR NOT NULL,
                vocab_size INTEGER NOT NULL,
                sha256 VARCHAR NOT NULL,
                meta JSON NOT NULL,
                created TIMESTAMP NOT NULL
            )""",
            """CREATE TABLE datasets (
                name VARCHAR PRIMARY KEY,
                path VARCHAR NOT NULL,
                tokenizer VARCHAR,
                vocab_size INTEGER,
                train_tokens BIGINT,
                val_tokens BIGINT,
                meta JSON NOT NULL,
                created TIMESTAMP NOT NULL
            )""",
            """CREATE TABLE runs (
                id VARCHAR PRIMARY KEY,
                kind VARCHAR NOT NULL,
                status VARCHAR NOT NULL,
                parent_id VARCHAR,
                run_dir VARCHAR NOT NULL,
                config JSON NOT NULL,
                created TIMESTAMP NOT NULL,
                started TIMESTAMP,
                finished TIMESTAMP,
                step BIGINT NOT NULL DEFAULT 0,
                total_steps BIGINT,
                metrics JSON NOT NULL DEFAULT '{}',
                info JSON NOT NULL DEFAULT '{}',
                error VARCHAR,
                pid INTEGER
            )""",
            """CREATE TABLE metrics (
                run_id VARCHAR NOT NULL,
                step BIGINT NOT NULL,
                time TIMESTAMP,
                name VARCHAR NOT NULL,
                value DOUBLE
            )""",
            "CREATE INDEX metrics_run_step ON metrics (run_id, step)",
            """CREATE TABLE samples (
                run_id VARCHAR NOT NULL,
                step BIGINT NOT NULL,
                time TIMESTAMP,
                prompt VARCHAR,
                text VARCHAR NOT NULL
            )""",
            """CREATE TABLE checkpoints (
                run_id VARCHAR NOT NULL,
                step BIGINT NOT NULL,
                path VARCHAR NOT NULL,
                best BOOLEAN NOT NULL DEFAULT false,
                created TIMESTAMP,
                PRIMARY KEY (run_id, step)
            )""",
            """CREATE TABLE evaluations (
                run_id VARCHAR NOT NULL,
                step BIGINT NOT NULL,
                name VARCHAR NOT NULL,
                value DOUBLE,
                created TIMESTAMP
            )""",
            """CREATE TABLE attention_snapshots (
                run_id VARCHAR NOT NULL,
                step BIGINT NOT NULL,
                path VARCHAR NOT NULL,
                layers INTEGER,
                heads INTEGER,
                tokens JSON,
                created TIMESTAMP
            )""",
            """CREATE TABLE event_offsets (
                run_id VARCHAR PRIMARY KEY,
                "offset" BIGINT NOT NULL
            )""",
        ),
    ),
    # A job's process is known by pid and start time, so a recycled pid is never signalled.
    Migration(2, ("ALTER TABLE runs ADD COLUMN pid_start BIGINT",)),
    # Adapters (LoRA, QLoRA): a workspace artifact bound to the base checkpoint it was trained on.
    Migration(
        3,
        (
            """CREATE TABLE adapters (
                name VARCHAR PRIMARY KEY,
                path VARCHAR NOT NULL,
                run_id VARCHAR,
                method VARCHAR NOT NULL,
                base_checkpoint VARCHAR NOT NULL,
                base_sha256 VARCHAR NOT NULL,
                rank INTEGER NOT NULL,
                alpha DOUBLE NOT NULL,
                targets JSON NOT NULL,
                dataset VARCHAR,
                metrics JSON NOT NULL,
                meta JSON NOT NULL,
                created TIMESTAMP NOT NULL
            )""",
        ),
    ),
    # Evaluation results: one row per task and metric of an evaluation (or of a training run's task evals).
    Migration(
        4,
        (
            """CREATE TABLE eval_results (
                run_id VARCHAR NOT NULL,
                model VARCHAR,
                checkpoint VARCHAR,
                step BIGINT,
                adapter VARCHAR,
                task VARCHAR NOT NULL,
                metric VARCHAR NOT NULL,
                value DOUBLE,
                stderr DOUBLE,
                n INTEGER,
                chance DOUBLE,
                settings JSON NOT NULL,
                created TIMESTAMP
            )""",
            "CREATE INDEX eval_results_run ON eval_results (run_id)",
        ),
    ),
    # Studies (evolutionary search) and their trials, as the engine saw them; the study storage stays the truth.
    Migration(
        5,
        (
            """CREATE TABLE studies (
                name VARCHAR PRIMARY KEY,
                storage VARCHAR NOT NULL,
                run_id VARCHAR,
                settings JSON NOT NULL,
                created TIMESTAMP,
                updated TIMESTAMP
            )""",
            """CREATE TABLE trials (
                study VARCHAR NOT NULL,
                number INTEGER NOT NULL,
                run_id VARCHAR,
                state VARCHAR NOT NULL,
                params JSON NOT NULL,
                objectives JSON,
                reason VARCHAR,
                updated TIMESTAMP,
                PRIMARY KEY (study, number)
            )""",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version

# A unix-seconds parameter as a UTC TIMESTAMP, independent of the session's time zone.
TIMESTAMP_PARAM = "make_timestamp(CAST(? * 1000000 AS BIGINT))"

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied TIMESTAMP NOT NULL)"
)


def schema_version(conn: duckdb.DuckDBPyConnection) -> int:
    """The newest migration applied to this catalog; 0 for an empty file."""
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def check_not_newer(version: int, where: str) -> None:
    """Refuse a catalog written by a newer LLModel: its tables may mean things this version does not know."""
    if version > SCHEMA_VERSION:
        raise LLModelError(
            f"catalog {where} has schema version {version}, newer than this LLModel ({SCHEMA_VERSION}); "
            "upgrade LLModel"
        )


def migrate(conn: duckdb.DuckDBPyConnection, *, where: str = "(in memory)") -> int:
    """Apply the pending migrations in one transaction and return the catalog's schema version."""
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(_VERSION_TABLE)
        current = schema_version(conn)
        check_not_newer(current, where)
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                f"INSERT INTO schema_version VALUES (?, {TIMESTAMP_PARAM})", [migration.version, time.time()]
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION
