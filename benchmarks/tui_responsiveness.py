"""Workbench responsiveness while a run trains: chart updates per second and key-press latency.

A writer thread plays a training job at 20 steps/s (its events file followed by a real engine), the workbench runs
headless in this process with the run view open, and every half second a key is pressed (``s`` and ``S`` in turn,
which change the curve smoothing and redraw every chart). Measured: how often the loss chart redraws with new points, how long a
chart takes to draw, and the time from a key press reaching the app to the first frame drawn after its handler
ran (the frame that shows the answer). Targets: charts update at least twice a second; key presses are answered
within 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.event_latency import write_step_events
from benchmarks.hardware import machine_description
from benchmarks.report import format_table, write_results
from engine.catalog import Catalog
from engine.client import EngineClient

RATE = 20.0  # training steps per second
UPDATES_TARGET = 2.0  # chart updates per second
KEY_TARGET_MS = 100.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[int(fraction * (len(ordered) - 1))] if ordered else float("nan")


async def press_and_time(app: Any, key: str, handled: Any, frames: list[float]) -> float:
    """Send ``key`` as the terminal would; ms until the first frame drawn after ``handled()`` turned true."""
    from textual import events

    event = events.Key(key, key)
    event.set_sender(app)
    sent = time.perf_counter()
    app._driver.send_message(event)
    while not handled():
        if time.perf_counter() - sent > 5:
            raise RuntimeError(f"key {key!r} not handled in 5 s; focus on {app.focused!r}")
        await asyncio.sleep(0.001)
    done = time.perf_counter()
    while not frames or frames[-1] < done:
        await asyncio.sleep(0.001)
    return (frames[-1] - sent) * 1000


async def drive(workspace: Path, seconds: float, go: threading.Event) -> dict[str, Any]:
    from llmodel_app.tui.app import LLModelApp
    from llmodel_app.tui.components.metric_chart import MetricChart
    from llmodel_app.tui.components.workspace_tree import WorkspaceTree

    draws: list[tuple[float, float, int]] = []  # (time, seconds drawing, points) of each loss-chart redraw
    render = MetricChart.render

    def timed_render(chart: MetricChart) -> Any:
        started = time.perf_counter()
        cached = chart._cache
        result = render(chart)
        if chart.metric == "loss" and chart._cache is not cached:
            draws.append((started, time.perf_counter() - started, len(chart.points)))
        return result

    MetricChart.render = timed_render  # type: ignore[method-assign]
    app = LLModelApp(workspace, poll_serving=False)
    frames: list[float] = []
    paint = app._display

    def display(screen: Any, renderable: Any) -> None:
        if renderable is not None:
            frames.append(time.perf_counter())
        paint(screen, renderable)

    app._display = display  # type: ignore[method-assign]
    latencies: list[float] = []
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            tree = app.query_one(WorkspaceTree)
            while "bench-run" not in tree.runs:
                await pilot.pause(0.1)
            tree.select_run("bench-run")
            while not app.query("#run-view") or not app.query_one("#run-view").loaded:
                await pilot.pause(0.1)
            run_view = app.query_one("#run-view")
            go.set()
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                await pilot.pause(0.5)
                before = run_view.smoothing_index
                key = "S" if len(latencies) % 2 else "s"  # more, then less smoothing: each press changes it
                latencies.append(
                    await press_and_time(app, key, lambda: run_view.smoothing_index != before, frames)  # noqa: B023
                )
            window = (start, time.perf_counter())
    finally:
        MetricChart.render = render  # type: ignore[method-assign]
    live = [d for d in draws if window[0] <= d[0] <= window[1]]
    growing = [d for i, d in enumerate(live) if i == 0 or d[2] > live[i - 1][2]]  # redraws that added points
    seconds_measured = window[1] - window[0]
    return {
        "seconds": seconds_measured,
        "steps_per_s": RATE,
        "chart_updates_per_s": len(growing) / seconds_measured,
        "chart_draw_p50_ms": statistics.median(d[1] for d in live) * 1000 if live else float("nan"),
        "chart_draw_max_ms": max(d[1] for d in live) * 1000 if live else float("nan"),
        "key_presses": len(latencies),
        "key_p50_ms": statistics.median(latencies),
        "key_p99_ms": percentile(latencies, 0.99),
        "key_max_ms": max(latencies),
    }


def run(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        run_dir = workspace / "runs" / "bench-run"
        run_dir.mkdir(parents=True)
        with Catalog.open(workspace) as catalog:  # this process plays the job, so its pid is alive
            catalog.create_run("bench-run", "pretrain", str(run_dir), {}, status="running")
            catalog.update_run("bench-run", pid=os.getpid(), total_steps=int(RATE * (seconds + 10)))
        client = EngineClient.connect(workspace)
        go = threading.Event()
        writer = threading.Thread(
            target=write_step_events,
            args=(run_dir / "events.jsonl", RATE, int(RATE * (seconds + 5)), go),
            daemon=True,
        )
        writer.start()
        try:
            return asyncio.run(drive(workspace, seconds, go))
        finally:
            client.post("/api/shutdown")
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a 3-second run to check the script; nothing written"
    )
    args = parser.parse_args()
    figures = run(3.0 if args.quick else 30.0)
    print(format_table(["workbench while a run trains (20 steps/s)", "value"], [
        ["loss chart updates per second", figures["chart_updates_per_s"]],
        ["chart draw p50 / max (ms)", f"{figures['chart_draw_p50_ms']:.1f} / {figures['chart_draw_max_ms']:.1f}"],
        [f"key press → frame showing it, p50 / p99 / max (ms, {figures['key_presses']} presses)",
         f"{figures['key_p50_ms']:.1f} / {figures['key_p99_ms']:.1f} / {figures['key_max_ms']:.1f}"],
    ]))  # fmt: skip
    ok = figures["chart_updates_per_s"] >= UPDATES_TARGET and figures["key_p99_ms"] <= KEY_TARGET_MS
    print(f"target: ≥ {UPDATES_TARGET:g} chart updates/s and key presses within {KEY_TARGET_MS:.0f} ms: "
          f"{'met' if ok else 'NOT met'}")  # fmt: skip
    if not args.quick:
        print(
            f"wrote {write_results('tui_responsiveness', machine_description(), {**figures, 'target_met': ok})}"
        )


if __name__ == "__main__":
    main()
