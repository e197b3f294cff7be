"""``evaluate`` and ``benchmark``: engine jobs whose results are catalog rows and a JSON file in the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from llmodel_app.cli.console import out, print_json, success
from llmodel_app.cli.jobs import DetachOption, WorkspaceOption, check_outcome, run_job

ModelPath = Annotated[
    Path | None,
    typer.Option(help="A run or checkpoint directory (default: the workspace's newest completed run)."),
]
Adapter = Annotated[str | None, typer.Option(help="Evaluate with this adapter (name or folder) merged in.")]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print the results as JSON.")]


def evaluate(
    tasks: Annotated[
        str, typer.Option(help="Comma-separated task names or task files; 'list' shows them all.")
    ],
    model_path: ModelPath = None,
    adapter: Adapter = None,
    limit: Annotated[int | None, typer.Option(help="At most this many documents per task.")] = None,
    data_path: Annotated[
        list[str] | None,
        typer.Option(
            help="TASK=FILE for tasks that read a local file (a bare FILE when only one task needs one)."
        ),
    ] = None,
    stride: Annotated[
        int | None, typer.Option(help="Perplexity windows advance this many tokens (default: the context).")
    ] = None,
    temperature: Annotated[
        float, typer.Option(help="Sampling temperature of generation tasks (0: greedy).")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of sampled generations.")] = 1234,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    as_json: JsonOutput = False,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
    detach: Annotated[bool, DetachOption] = False,
) -> None:
    """Score a model on tasks: perplexity, multiple choice, generation, code; every result goes to the catalog."""
    from engine.evaluation.tasks import builtin_tasks
    from engine.specs.evaluation import check_tasks, evaluate_spec, task_files, task_order

    if tasks.strip() == "list":
        _list_tasks(builtin_tasks())
        return
    names = task_order(tasks)
    paths = task_files(data_path or [], names)
    check_tasks(
        names, paths
    )  # an unknown task, a malformed task file or a missing file fails before the model
    spec = evaluate_spec(
        _model(model_path, adapter, workspace),
        names,
        adapter=_adapter_dir(adapter, workspace),
        data_paths=paths,
        limit=limit,
        stride=stride,
        temperature=temperature,
        seed=seed,
        device=device,
    )
    result = check_outcome(run_job(workspace, spec, detach=detach))
    if not result:
        return
    from engine.evaluation.evaluate import read_results

    rows = read_results(Path(result["results"]).parent)
    if as_json:
        print_json(rows)
        return
    out.print(results_table(rows))
    success(f"results saved to {result['results']} and the workspace catalog")


def benchmark(
    model_path: ModelPath = None,
    adapter: Adapter = None,
    new_tokens: Annotated[int, typer.Option(help="Tokens generated per timed call.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    as_json: JsonOutput = False,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
    detach: Annotated[bool, DetachOption] = False,
) -> None:
    """Measure generation speed and latency, peak memory, energy (where a counter exists) and training speed."""
    from engine.specs import benchmark_spec

    model = _model(model_path, adapter, workspace)
    spec = benchmark_spec(
        model, adapter=_adapter_dir(adapter, workspace), device=device, new_tokens=new_tokens
    )
    result = check_outcome(run_job(workspace, spec, detach=detach))
    if not result:
        return
    figures = result["figures"]
    if as_json:
        print_json(figures)
        return
    out.print(results_table([figures]))
    for note in (figures["settings"].get("energy"),):
        if note:
            out.print(f"energy: {note}")


def _model(model_path: Path | None, adapter: str | None, workspace: Path | None) -> Path:
    if model_path is not None:
        return model_path.resolve()
    if adapter is not None:
        from engine.adapters.files import resolve_adapter
        from engine.runs.merge import base_of
        from engine.workspace import workspace_root

        return base_of(resolve_adapter(adapter, workspace_root(workspace))).path
    from llmodel_app.cli.commands_model import default_model

    return default_model(workspace).resolve()


def _adapter_dir(adapter: str | None, workspace: Path | None) -> str | None:
    if adapter is None:
        return None
    from engine.adapters.files import resolve_adapter
    from engine.workspace import workspace_root

    return str(resolve_adapter(adapter, workspace_root(workspace)).path)


def _list_tasks(tasks: dict[str, Any]) -> None:
    table = Table(box=None, header_style="bold")
    table.add_column("task", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("what it measures (chance)")
    for task in tasks.values():
        source = " — needs --data-path" if task.needs_data else ""
        table.add_row(task.name, task.kind, f"{task.description} ({task.chance}){source}")
    out.print(table)
    out.print(
        "Custom tasks: a .json or .yaml task file (name, kind, data, prompt, choices/answer or target)."
    )


def results_table(rows: list[dict[str, Any]]) -> Table:
    """Task, metric, value ± standard error, documents, and how a guess (or a constant answer) does."""
    table = Table(box=None, header_style="bold")
    table.add_column("task", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    for name in ("value", "± stderr", "n", "chance", "seconds"):
        table.add_column(name, justify="right")
    for row in rows:
        baseline = row.get("baseline") or {}
        for score in row["scores"]:
            stderr = score.get("stderr")
            guess = baseline.get(score["metric"])
            table.add_row(
                row["task"],
                score["metric"],
                f"{score['value']:.4g}",
                f"{stderr:.3g}" if stderr is not None else "",
                str(score.get("n", "")),
                f"{guess:.4g}" if guess is not None else "",
                f"{row.get('seconds', 0):.1f}" if row.get("seconds") else "",
            )
    return table
