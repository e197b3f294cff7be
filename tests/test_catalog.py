"""The workspace catalog: migrations, the run lifecycle, event ingestion that survives crashes, and fast reads."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import duckdb
import pytest

from engine.catalog import CATALOG_FILE, SCHEMA_VERSION, Catalog, migrate
from engine.errors import LLModelError

T0 = 1_780_000_000.0
CONFIG = {
    "model_config": {"vocab_size": 512, "d_model": 32, "n_layers": 2, "n_heads": 4},
    "train_config": {"learning_rate": 3e-3, "batch_size": 4, "max_steps": 12},
}


@pytest.fixture
def catalog(tmp_path: Path) -> Any:
    with Catalog.open(tmp_path) as cat:
        yield cat


def training_events(run_dir: str = "/ws/runs/r1", *, start: int = 0, steps: int = 12) -> list[dict[str, Any]]:
    """What the trainer writes for a short run: status, step lines, eval/sample/checkpoint every 4 steps."""
    events: list[dict[str, Any]] = [
        {
            "type": "status",
            "time": T0,
            "status": "running",
            "step": start,
            "total_steps": steps,
            "tokens_per_step": 128,
            "device": "cpu",
            "precision": "fp32",
            "parameters": 41_000,
        },
        {"type": "log", "time": T0, "level": "info", "message": "training 41,000 parameters on cpu"},
    ]
    metrics: dict[str, float] = {}
    for step in range(start + 1, steps + 1):
        loss = 6.0 - 0.3 * step
        metrics.update(loss=loss, lr=3e-3)
        events.append(
            {
                "type": "step",
                "time": T0 + step,
                "step": step,
                "loss": loss,
                "lr": 3e-3,
                "grad_norm": 1.5,
                "tokens": step * 128,
                "tokens_per_s": 9000.0,
                "step_time": 0.014,
                "memory": None,
            }
        )
        if step % 4 == 0:
            val = {"val_loss": loss + 0.2, "val_ppl": math.exp(loss + 0.2), "val_accuracy": 0.1 + step / 100}
            metrics.update(val)
            events.append({"type": "eval", "time": T0 + step, "step": step, **val})
            events.append(
                {
                    "type": "sample",
                    "time": T0 + step,
                    "step": step,
                    "prompt": "def ",
                    "text": f"def f{step}():",
                }
            )
            events.append(
                {
                    "type": "checkpoint",
                    "time": T0 + step,
                    "step": step,
                    "path": f"{run_dir}/checkpoints/step-{step:08d}",
                    "best": True,
                }
            )
        if step == 8:
            events.append(
                {
                    "type": "attention",
                    "time": T0 + step,
                    "step": step,
                    "path": f"{run_dir}/attention/step-8.npz",
                    "layers": 2,
                    "heads": 4,
                    "tokens": ["def", " f", "(", ")"],
                }
            )
    events.append(
        {
            "type": "status",
            "time": T0 + steps + 1,
            "status": "completed",
            "step": steps,
            "total_steps": steps,
            "metrics": dict(metrics),
        }
    )
    return events


def row_counts(catalog: Catalog, run_id: str) -> dict[str, int]:
    tables = ("metrics", "samples", "checkpoints", "evaluations", "attention_snapshots", "event_offsets")
    return {t: catalog._scalar(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id]) for t in tables}


# -- schema ------------------------------------------------------------------------------------------


def test_a_new_workspace_gets_a_migrated_catalog_and_reopening_migrates_nothing(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "ws") as cat:
        assert cat.path == tmp_path / "ws" / CATALOG_FILE
        assert cat.summary()["runs_total"] == 0
    with Catalog.open(tmp_path / "ws") as cat:
        versions = cat._rows("SELECT version FROM schema_version ORDER BY version")
    assert [row["version"] for row in versions] == list(range(1, SCHEMA_VERSION + 1))


def test_migrate_applies_only_pending_migrations() -> None:
    conn = duckdb.connect(":memory:")
    assert migrate(conn) == SCHEMA_VERSION
    assert migrate(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (SCHEMA_VERSION,)


def test_a_catalog_from_a_newer_llmodel_is_refused(tmp_path: Path) -> None:
    Catalog.open(tmp_path).close()
    with duckdb.connect(str(tmp_path / CATALOG_FILE)) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, now()::TIMESTAMP)", [SCHEMA_VERSION + 1])
    expected = (
        f"has schema version {SCHEMA_VERSION + 1}, newer than this LLModel \\({SCHEMA_VERSION}\\); upgrade"
    )
    with pytest.raises(LLModelError, match=expected):
        Catalog.open(tmp_path)
    with pytest.raises(LLModelError, match=expected):
        Catalog.open(tmp_path, read_only=True)


# -- runs --------------------------------------------------------------------------------------------


def test_a_run_goes_from_queued_to_running_to_completed(catalog: Catalog) -> None:
    catalog.create_run("r1", "pretrain", "/ws/runs/r1", CONFIG, total_steps=12)
    [queued] = catalog.list_runs()
    assert (queued["id"], queued["kind"], queued["status"], queued["step"]) == ("r1", "pretrain", "queued", 0)
    assert queued["started"] is None and queued["loss"] is None

    catalog.update_run("r1", status="running", pid=4242)
    running = catalog.get_run("r1")
    assert running["status"] == "running" and running["pid"] == 4242 and running["started"] is not None

    catalog.update_run("r1", status="completed", step=12, metrics={"loss": 2.5, "val_loss": 2.7})
    done = catalog.get_run("r1")
    assert done["finished"] >= done["started"] >= done["created"] - 1
    assert done["config"] == CONFIG and done["metrics"] == {"loss": 2.5, "val_loss": 2.7}
    assert catalog.list_runs(status="completed")[0]["val_loss"] == 2.7
    assert catalog.run_ids_with_status("running", "queued") == []
    assert catalog.run_ids_with_status("completed") == ["r1"]


def test_runs_are_listed_newest_first_and_filtered(catalog: Catalog) -> None:
    for run_id, kind in (("a", "tokenizer"), ("b", "pretrain"), ("c", "pretrain")):
        catalog.create_run(run_id, kind, f"/ws/runs/{run_id}", {})
    assert [r["id"] for r in catalog.list_runs()] == ["c", "b", "a"]
    assert [r["id"] for r in catalog.list_runs(kind="pretrain", limit=1)] == ["c"]


def test_a_missing_or_duplicate_run_is_a_one_line_error(catalog: Catalog) -> None:
    with pytest.raises(LLModelError, match=r"^no run named nope; see `llmodel runs list`$"):
        catalog.get_run("nope")
    with pytest.raises(LLModelError, match="no run named nope"):
        catalog.update_run("nope", status="failed")
    catalog.create_run("r1", "pretrain", "/ws/runs/r1", CONFIG)
    with pytest.raises(LLModelError, match="already exists"):
        catalog.create_run("r1", "pretrain", "/ws/runs/r1", CONFIG)
    with pytest.raises(TypeError, match="unknown fields"):
        catalog.update_run("r1", colour="red")


# -- events ------------------------------------------------------------------------------------------


def test_ingesting_a_training_run_records_its_history_and_updates_the_run(catalog: Catalog) -> None:
    catalog.create_run("r1", "pretrain", "/ws/runs/r1", CONFIG)
    events = training_events()
    assert catalog.ingest_events("r1", events, len(events)) == len(events)

    run = catalog.get_run("r1")
    assert run["status"] == "completed" and run["step"] == 12 and run["total_steps"] == 12
    assert run["started"] == T0 and run["finished"] == T0 + 13
    assert run["metrics"]["loss"] == pytest.approx(6.0 - 0.3 * 12)
    assert run["metrics"]["val_loss"] == pytest.approx(6.2 - 0.3 * 12)
    assert run["info"] == {"tokens_per_step": 128, "device": "cpu", "precision": "fp32", "parameters": 41_000}
    assert run["event_offset"] == len(events)

    curves = catalog.metrics("r1")
    assert set(curves) == {
        "loss",
        "lr",
        "grad_norm",
        "tokens",
        "tokens_per_s",
        "step_time",
        "val_loss",
        "val_ppl",
        "val_accuracy",
    }
    assert [step for step, _ in curves["loss"]] == list(range(1, 13))
    assert [step for step, _ in curves["val_loss"]] == [4, 8, 12]
    assert catalog.metrics("r1", ["loss"])["loss"][0] == (1, pytest.approx(5.7))

    assert [(c["step"], c["best"]) for c in run["checkpoints"]] == [(4, False), (8, False), (12, True)]
    assert [s["text"] for s in catalog.samples("r1", 2)] == ["def f8():", "def f12():"]
    assert {(e["step"], e["name"]) for e in catalog.evaluations("r1")} >= {
        (4, "val_loss"),
        (12, "val_accuracy"),
    }
    [snapshot] = catalog.attention_snapshots("r1")
    assert snapshot["step"] == 8 and (snapshot["layers"], snapshot["heads"]) == (2, 4)
    assert snapshot["tokens"] == ["def", " f", "(", ")"]


def test_reingesting_from_the_stored_offset_adds_no_duplicates(catalog: Catalog) -> None:
    catalog.create_run("r1", "pretrain", "/ws/runs/r1", CONFIG)
    events = training_events()
    first, rest = events[:20], events[20:]
    catalog.ingest_events("r1", first, 20)
    before = row_counts(catalog, "r1")

    assert catalog.ingest_events("r1", first, 20) == 0  # the engine restarted and replayed the same lines
    assert row_counts(catalog, "r1") == before

    # A follower that re-read the file from line 0: only the lines after the stored offset are new.
    assert catalog.ingest_events("r1", events, len(events)) == len(rest)
    assert catalog.ingest_events("r1", rest, len(events)) == 0
    assert catalog.event_offset("r1") == len(events)
    counts = row_counts(catalog, "r1")
    assert counts["checkpoints"] == 3 and counts["samples"] == 3 and counts["attention_snapshots"] == 1
    assert [step for step, _ in catalog.metrics("r1", ["loss"])["loss"]] == list(range(1, 13))


def test_a_crash_during_ingest_leaves_nothing_half_written(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog.create_run("r1", "pretrain", "/ws/runs/r1", CONFIG)
    events = training_events()

    def crash(*args: Any) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(Catalog, "_store_offset", staticmethod(crash))
    with pytest.raises(RuntimeError):
        catalog.ingest_events("r1", events, len(events))
    assert sum(row_counts(catalog, "r1").values()) == 0
    assert catalog.get_run("r1")["status"] == "queued" and catalog.event_offset("r1") == 0

    monkeypatch.undo()
    catalog.ingest_events("r1", events, len(events))
    assert len(catalog.metrics("r1", ["loss"])["loss"]) == 12


def test_a_resumed_run_keeps_one_curve(catalog: Catalog) -> None:
    catalog.create_run("r1", "pretrain", "/ws/runs/r1", CONFIG)
    crashed = training_events()[:-1]  # killed after step 12's events, before its final status
    catalog.ingest_events("r1", crashed, len(crashed))
    resumed = training_events(start=8)  # resumed from the step-8 checkpoint
    catalog.ingest_events("r1", resumed, len(crashed) + len(resumed))

    assert [step for step, _ in catalog.metrics("r1", ["loss"])["loss"]] == list(range(1, 13))
    assert [s["step"] for s in catalog.samples("r1", 10)] == [4, 8, 12]
    assert [c["step"] for c in catalog.checkpoints("r1")] == [4, 8, 12]
    assert catalog.get_run("r1")["started"] == T0


def test_downsampling_returns_at_most_max_points_and_keeps_the_first_and_last_steps(catalog: Catalog) -> None:
    catalog.create_run("long", "pretrain", "/ws/runs/long", CONFIG)
    steps = 20_000
    events = [{"type": "step", "time": T0 + s, "step": s, "loss": 10.0 / s} for s in range(1, steps + 1)]
    events += [
        {"type": "eval", "time": T0 + s, "step": s, "val_loss": 10.0 / s} for s in range(500, steps + 1, 500)
    ]
    catalog.ingest_events("long", events, len(events))

    curves = catalog.metrics("long", max_points=100)
    loss = curves["loss"]
    assert len(loss) <= 100
    assert loss[0] == (1, 10.0) and loss[-1] == (steps, 10.0 / steps)
    assert [s for s, _ in loss] == sorted({s for s, _ in loss})
    assert all(
        a >= b for (_, a), (_, b) in itertools.pairwise(loss)
    )  # averaging keeps a falling curve falling
    assert len(curves["val_loss"]) == 40  # short enough to come back whole
    assert len(catalog.metrics("long", ["loss"], max_points=2)["loss"]) == 2


# -- comparing and removing --------------------------------------------------------------------------


def test_compare_runs_lists_the_config_keys_that_differ(catalog: Catalog) -> None:
    wider = {**CONFIG, "model_config": {**CONFIG["model_config"], "d_model": 64}}
    lion = {**CONFIG, "train_config": {**CONFIG["train_config"], "optimizer": "lion"}}
    for run_id, config in (("base", CONFIG), ("wide", wider), ("lion", lion)):
        catalog.create_run(run_id, "pretrain", f"/ws/runs/{run_id}", config)
    catalog.update_run("wide", metrics={"val_loss": 2.1})

    compared = catalog.compare_runs(["base", "wide", "lion"])
    assert compared["differing"] == ["model_config.d_model", "train_config.optimizer"]
    assert compared["runs"]["wide"]["config"]["model_config.d_model"] == 64
    assert compared["runs"]["wide"]["metrics"] == {"val_loss": 2.1}
    assert catalog.compare_runs(["base", "base"])["differing"] == []


def test_every_training_run_records_its_settings_in_one_shape_so_compare_shows_only_real_differences(
    catalog: Catalog,
) -> None:
    # A quickstart is submitted with its own options; a pretraining run with resolved configs. Both record the
    # configs their trainer resolved, from its first status event.
    catalog.create_run(
        "quick", "quickstart", "/ws/runs/quick", {"workspace": "/ws", "options": {"model": {}}}
    )
    catalog.create_run("pre", "pretrain", "/ws/runs/pre", CONFIG)
    faster = {**CONFIG["train_config"], "learning_rate": 1e-3}
    for run_id, train in (("quick", faster), ("pre", CONFIG["train_config"])):
        started = {
            "type": "status",
            "status": "running",
            "step": 0,
            "time": 1.0,
            "model_config": CONFIG["model_config"],
            "train_config": train,
        }
        catalog.ingest_events(run_id, [started], 1)
    assert catalog.compare_runs(["quick", "pre"])["differing"] == ["train_config.learning_rate"]
    assert "model_config" not in catalog.get_run("quick")["info"]


def test_remove_run_removes_every_row_of_the_run(catalog: Catalog) -> None:
    for run_id in ("gone", "kept"):
        catalog.create_run(run_id, "pretrain", f"/ws/runs/{run_id}", CONFIG)
        events = training_events(f"/ws/runs/{run_id}")
        catalog.ingest_events(run_id, events, len(events))
    catalog.remove_run("gone")
    assert set(row_counts(catalog, "gone").values()) == {0}
    assert all(row_counts(catalog, "kept").values())
    assert [r["id"] for r in catalog.list_runs()] == ["kept"]
    with pytest.raises(LLModelError, match="no run named gone"):
        catalog.remove_run("gone")


# -- configs, tokenizers, datasets -------------------------------------------------------------------


def test_configs_tokenizers_and_datasets_are_listed_and_re_registering_replaces(catalog: Catalog) -> None:
    catalog.register_config("nano", "/ws/configs/nano.json", "model", {"d_model": 32})
    catalog.register_config("nano", "/ws/configs/nano.json", "model", {"d_model": 48})
    catalog.register_config("quick", "/ws/configs/quick.json", "train", {"max_steps": 12})
    catalog.register_tokenizer("bpe512", "/ws/tokenizers/bpe512", 512, "ab" * 32, {"model_type": "bpe"})
    meta = {
        "tokenizer": "bpe512",
        "tokenizer_sha256": "ab" * 32,
        "vocab_size": 512,
        "dtype": "uint16",
        "train": {"documents": 90, "tokens": 9000},
        "val": {"documents": 10, "tokens": 1000},
    }
    catalog.register_dataset("stdlib", "/ws/datasets/stdlib", meta)

    assert [(c["name"], c["kind"], c["data"]) for c in catalog.list_configs()] == [
        ("nano", "model", {"d_model": 48}),
        ("quick", "train", {"max_steps": 12}),
    ]
    assert [c["name"] for c in catalog.list_configs("train")] == ["quick"]
    [tokenizer] = catalog.list_tokenizers()
    assert (tokenizer["vocab_size"], tokenizer["meta"]) == (512, {"model_type": "bpe"})
    [dataset] = catalog.list_datasets()
    assert (dataset["tokenizer"], dataset["vocab_size"], dataset["train_tokens"], dataset["val_tokens"]) == (
        "bpe512",
        512,
        9000,
        1000,
    )
    assert dataset["meta"] == meta
    with pytest.raises(ValueError, match="config kind"):
        catalog.register_config("x", "/x.json", "optimizer", {})

    catalog.create_run("r1", "pretrain", "/ws/runs/r1", CONFIG, status="running")
    summary = catalog.summary()
    assert (summary["configs"], summary["tokenizers"], summary["datasets"]) == (2, 1, 1)
    assert summary["runs"]["running"] == 1 and summary["runs"]["failed"] == 0 and summary["runs_total"] == 1


# -- read-only access ----------------------------------------------------------------------------------


def test_read_only_open_of_a_missing_catalog_fails_with_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(LLModelError) as err:
        Catalog.open(tmp_path / "nowhere", read_only=True)
    assert "\n" not in str(err.value) and "no catalog at" in str(err.value)
    assert not (tmp_path / "nowhere").exists()


def test_a_read_only_catalog_reads_what_the_writer_wrote_and_refuses_writes(tmp_path: Path) -> None:
    with Catalog.open(tmp_path) as writer:
        writer.create_run("r1", "pretrain", "/ws/runs/r1", CONFIG)
        events = training_events()
        writer.ingest_events("r1", events, len(events))
    with Catalog.open(tmp_path, read_only=True) as reader:
        assert reader.get_run("r1")["status"] == "completed"
        assert len(reader.metrics("r1", ["loss"])["loss"]) == 12
        with pytest.raises(LLModelError, match="read-only"):
            reader.update_run("r1", status="failed")


# -- speed -------------------------------------------------------------------------------------------


def test_listing_a_thousand_runs_gives_each_its_latest_metrics(tmp_path: Path) -> None:
    Catalog.open(tmp_path).close()
    with duckdb.connect(str(tmp_path / CATALOG_FILE)) as conn:  # seed in bulk: 1,000 runs × 100 metric rows
        conn.execute(
            """INSERT INTO runs (id, kind, status, run_dir, config, created, step, total_steps, metrics)
               SELECT 'run-' || i, 'pretrain', 'completed', '/ws/runs/run-' || i, '{"model_config": {"d_model": 64}}',
                      make_timestamp(CAST((? + i) * 1000000 AS BIGINT)), 100, 100,
                      '{"loss": 2.5, "lr": 0.0003, "val_loss": 2.7, "val_ppl": 14.9}'
               FROM range(1000) AS t(i)""",
            [T0],
        )
        conn.execute(
            "INSERT INTO metrics SELECT 'run-' || i, s, NULL, 'loss', 1.0 / (s + 1) "
            "FROM range(1000) AS t(i), range(1, 101) AS u(s)"
        )
    with Catalog.open(tmp_path) as cat:  # timings: benchmarks/runs_list.py
        runs = cat.list_runs()
    assert len(runs) == 1000 and runs[0]["id"] == "run-999" and runs[0]["val_loss"] == 2.7
