"""Workbench start-up: the time from launching ``llmodel`` (no subcommand) to its first painted frame.

Each measurement starts a fresh Python process that imports the workbench the way ``llmodel`` does, opens the app
headless at 120×40 and reports when the first frame has been drawn; the engine connection runs in the background
and is not waited for (a fake engine that never answers stands in for it, so only the UI's own cost is timed).
With ``--engine`` the real engine of a temporary workspace is used instead (started in the background too).
Target: first frame in under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_MS = 1000.0


def child(engine: bool, workspace: Path) -> None:
    """Runs in the measured process: import, build and paint the first frame, print the timings as JSON."""
    launched = float(os.environ["LLMODEL_BENCH_LAUNCHED"])
    imported_at = time.time()
    from llmodel_app.cli import entry as _entry  # noqa: F401 - the `llmodel` script's module
    from llmodel_app.tui.app import LLModelApp
    from llmodel_app.tui.components.workspace_tree import WorkspaceTree

    imports_done = time.time()
    marks: dict[str, float] = {}

    def never(_workspace: Path, _start: bool) -> object:
        time.sleep(3600)  # an engine that never answers: the UI must not wait for it

    async def ready(pilot) -> None:  # type: ignore[no-untyped-def]
        marks["ready"] = time.time()  # the app is composed and mounted, nothing painted yet

    kwargs = {} if engine else {"connect": never}
    app = LLModelApp(workspace, poll_serving=False, **kwargs)  # type: ignore[arg-type]
    paint = app._display

    def display(screen, renderable) -> None:  # type: ignore[no-untyped-def]
        # The first frame written to the terminal that shows the workbench laid out (header, sidebar, tabs);
        # headless, nothing is written, but this is the moment it would be.
        if "frame" not in marks and renderable is not None and not app._batch_count:
            tree = screen.query(WorkspaceTree)
            if tree and tree.first().region.area:
                marks["frame"] = time.time()
                app.call_later(app.exit)
        paint(screen, renderable)

    app._display = display  # type: ignore[method-assign]
    app.run(headless=True, size=(120, 40), auto_pilot=ready)
    print(json.dumps({
        "interpreter_ms": (imported_at - launched) * 1000,
        "imports_ms": (imports_done - imported_at) * 1000,
        "ready_ms": (marks["ready"] - launched) * 1000,
        "first_frame_ms": (marks["frame"] - launched) * 1000,
        "torch_imported": "torch" in sys.modules,
    }))  # fmt: skip


def measure(engine: bool, workspace: Path) -> dict[str, float]:
    env = {**os.environ, "LLMODEL_BENCH_LAUNCHED": repr(time.time())}
    command = [sys.executable, "-m", "benchmarks.tui_startup", "--child", "--workspace", str(workspace)]
    command += ["--engine"] if engine else []
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two runs, to check the script; nothing written")
    parser.add_argument(
        "--engine", action="store_true", help="connect to a real engine (started in the background)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workspace", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.engine, args.workspace)
        return
    repeats = 2 if args.quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        runs = [measure(args.engine, Path(tmp) / "workspace") for _ in range(repeats + 1)][
            1:
        ]  # first: warm caches
        if args.engine:
            from engine.client import EngineClient, EngineUnavailable

            try:  # the engine the workbenches started in the background, if one got as far as running
                with EngineClient.connect(Path(tmp) / "workspace", start=False) as client:
                    client.post("/api/shutdown")
            except EngineUnavailable:
                pass
    figures = {
        key: statistics.median(run[key] for run in runs)
        for key in ("interpreter_ms", "imports_ms", "ready_ms", "first_frame_ms")
    }
    figures["torch_imported"] = any(run["torch_imported"] for run in runs)
    figures["repeats"] = repeats
    from benchmarks.report import format_table

    print(format_table(["workbench start-up (median)", "ms"], [
        ["python interpreter", figures["interpreter_ms"]],
        ["imports (entry + Textual + workbench)", figures["imports_ms"]],
        ["launch → app composed and mounted", figures["ready_ms"]],
        ["launch → first frame", figures["first_frame_ms"]],
    ]))  # fmt: skip
    ok = figures["first_frame_ms"] <= TARGET_MS and not figures["torch_imported"]
    print(f"torch imported: {figures['torch_imported']}")
    print(f"target: first frame under {TARGET_MS:.0f} ms without torch: {'met' if ok else 'NOT met'}")
    if not args.quick:
        from benchmarks.hardware import machine_description
        from benchmarks.report import write_results

        name = "tui_startup_engine" if args.engine else "tui_startup"
        print(f"wrote {write_results(name, machine_description(), {**figures, 'target_met': ok})}")


if __name__ == "__main__":
    main()
