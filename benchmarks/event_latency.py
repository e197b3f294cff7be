"""Event path latency: a job writing 100 events/s, seen by SSE subscribers of the run and of the workspace.

A writer thread plays a running job: it appends step events to a run's ``events.jsonl`` at a steady rate, each
stamped with its write time. A real engine process follows the file (ingesting into the catalog and fanning out),
and two subscribers read the run stream (``/api/runs/{id}/events``) and the workspace stream (``/api/events``).
Latency = time received - time written. Target: every event within 250 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.hardware import machine_description
from benchmarks.report import format_table, write_results
from engine.catalog import Catalog
from engine.client import EngineClient

TARGET_MS = 250.0


def write_step_events(path: Path, rate: float, count: int, started: threading.Event) -> None:
    """Play a running job: append ``count`` step events to ``path`` at ``rate`` per second, then a final status."""
    started.wait()
    interval = 1.0 / rate
    next_time = time.perf_counter()
    with open(path, "a", encoding="utf-8") as fh:
        for step in range(1, count + 1):
            event = {"type": "step", "time": time.time(), "step": step, "loss": 5.0 - step * 1e-3, "lr": 1e-3}
            fh.write(json.dumps(event) + "\n")
            fh.flush()
            next_time += interval
            time.sleep(max(0.0, next_time - time.perf_counter()))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(
            json.dumps({"type": "status", "time": time.time(), "status": "completed", "final": True}) + "\n"
        )


def _collect(stream, count: int, latencies: list[float], ready: threading.Event) -> None:  # type: ignore[no-untyped-def]
    ready.set()
    for event in stream:
        if event.get("type") == "step":
            latencies.append((time.time() - event["time"]) * 1000)
            if event["step"] >= count:
                return


def run(rate: float, seconds: float) -> dict[str, float]:
    count = int(rate * seconds)
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        run_dir = workspace / "runs" / "bench-run"
        run_dir.mkdir(parents=True)
        with Catalog.open(workspace) as catalog:
            # This process plays the job: its pid is alive, so the engine follows the run as a live job.
            catalog.create_run("bench-run", "pretrain", str(run_dir), {}, status="running")
            catalog.update_run("bench-run", pid=os.getpid())
        client = EngineClient.connect(workspace)
        try:
            run_latencies: list[float] = []
            workspace_latencies: list[float] = []
            ready_a, ready_b, go = threading.Event(), threading.Event(), threading.Event()
            readers = [
                threading.Thread(
                    target=_collect, args=(client.follow("bench-run"), count, run_latencies, ready_a)
                ),
                threading.Thread(
                    target=_collect, args=(client.workspace_events(), count, workspace_latencies, ready_b)
                ),
            ]
            for reader in readers:
                reader.start()
            ready_a.wait(10)
            ready_b.wait(10)
            time.sleep(0.5)  # let both subscriptions reach the engine
            writer = threading.Thread(
                target=write_step_events, args=(run_dir / "events.jsonl", rate, count, go)
            )
            writer.start()
            go.set()
            writer.join()
            for reader in readers:
                reader.join(timeout=30)
        finally:
            client.post("/api/shutdown")
            client.close()
    figures: dict[str, float] = {"rate": rate, "events": count}
    for name, values in (("run_stream", run_latencies), ("workspace_stream", workspace_latencies)):
        values.sort()
        figures[f"{name}_received"] = len(values)
        figures[f"{name}_p50_ms"] = statistics.median(values) if values else float("nan")
        figures[f"{name}_p99_ms"] = values[int(0.99 * (len(values) - 1))] if values else float("nan")
        figures[f"{name}_max_ms"] = values[-1] if values else float("nan")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a 2-second run to check the script; nothing written"
    )
    args = parser.parse_args()
    figures = run(rate=100.0, seconds=2.0 if args.quick else 20.0)
    rows = [
        [
            stream,
            figures[f"{stream}_received"],
            figures[f"{stream}_p50_ms"],
            figures[f"{stream}_p99_ms"],
            figures[f"{stream}_max_ms"],
        ]
        for stream in ("run_stream", "workspace_stream")
    ]
    print(format_table(["stream (100 events/s)", "received", "p50 ms", "p99 ms", "max ms"], rows))
    ok = all(
        figures[f"{s}_max_ms"] <= TARGET_MS and figures[f"{s}_received"] == figures["events"]
        for s in ("run_stream", "workspace_stream")
    )
    print(f"target: every event within {TARGET_MS:.0f} ms: {'met' if ok else 'NOT met'}")
    if not args.quick:
        print(f"wrote {write_results('event_latency', machine_description(), {**figures, 'target_met': ok})}")


if __name__ == "__main__":
    main()
