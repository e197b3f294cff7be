"""``llmodel runs list`` with 1,000 runs in the catalog: the query alone and the whole command.

The command is the installed ``llmodel`` script, run as a user runs it. Measured with no engine running and
through a running engine, each with the runs index current (the usual case: the catalog's writer keeps it) and
without it (the command falls back to the catalog: DuckDB read-only, or the engine's API).
Target: the command answers in under 300 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.hardware import machine_description
from benchmarks.report import format_table, write_results
from engine.catalog import Catalog
from engine.catalog.runs_index import INDEX_FILE
from engine.client import EngineClient
from llmodel_app.cli.reading import query

TARGET_MS = 300.0


def seed_catalog(workspace: Path, runs: int) -> None:
    """``runs`` finished pretraining runs, each with 100 recorded steps."""
    with Catalog.open(workspace) as catalog:
        for i in range(runs):
            run_id = f"pretrain-20260101-{i:06d}-0000"
            run_dir = workspace / "runs" / run_id
            catalog.create_run(
                run_id, "pretrain", str(run_dir), {"model_config": {"d_model": 64 + i % 4}}, status="running"
            )
            events = [
                {"type": "step", "time": 1.0 + s, "step": s, "loss": 5.0 / s, "lr": 1e-3}
                for s in range(1, 101)
            ]
            events.append({"type": "status", "time": 200.0, "status": "completed", "final": True})
            catalog.ingest_events(run_id, events, len(events))


def time_ms(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def command_ms(workspace: Path, repeats: int, *, index: bool) -> float:
    """Median wall time of ``llmodel runs list --json``, with the runs index current or hidden."""
    env = {**os.environ, "LLMODEL_WORKSPACE": str(workspace)}
    command = [str(Path(sys.executable).parent / "llmodel"), "runs", "list", "--json"]
    index_file, hidden = workspace / INDEX_FILE, workspace / f"{INDEX_FILE}.hidden"
    if not index:
        index_file.rename(hidden)
    try:
        return time_ms(lambda: subprocess.run(command, env=env, check=True, capture_output=True), repeats)
    finally:
        if not index:
            hidden.rename(index_file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 runs, to check the script; nothing written")
    args = parser.parse_args()
    runs = 50 if args.quick else 1000
    repeats = 3 if args.quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        seed_catalog(workspace, runs)
        assert len(query(workspace, "list_runs")) == runs
        figures = {
            "runs": runs,
            "query_read_only_ms": time_ms(lambda: query(workspace, "list_runs"), repeats),
            "command_read_only_ms": command_ms(workspace, repeats, index=True),
            "command_read_only_no_index_ms": command_ms(workspace, repeats, index=False),
        }
        client = EngineClient.connect(workspace)
        try:
            figures["query_via_engine_ms"] = time_ms(lambda: query(workspace, "list_runs"), repeats)
            figures["command_via_engine_ms"] = command_ms(workspace, repeats, index=True)
            figures["command_via_engine_no_index_ms"] = command_ms(workspace, repeats, index=False)
        finally:
            client.post("/api/shutdown")
            client.close()
    startup = time_ms(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), repeats)
    figures["python_startup_ms"] = startup
    rows = [
        ["no engine", figures["command_read_only_ms"], figures["command_read_only_no_index_ms"]],
        ["engine running", figures["command_via_engine_ms"], figures["command_via_engine_no_index_ms"]],
    ]
    print(format_table([f"llmodel runs list --json, {runs} runs", "with the index ms", "without ms"], rows))
    print(f"bare python start-up: {startup:.0f} ms")
    ok = max(figures["command_read_only_ms"], figures["command_via_engine_ms"]) <= TARGET_MS
    print(f"target: command under {TARGET_MS:.0f} ms: {'met' if ok else 'NOT met'}")
    if not args.quick:
        print(f"wrote {write_results('runs_list', machine_description(), {**figures, 'target_met': ok})}")


if __name__ == "__main__":
    main()
