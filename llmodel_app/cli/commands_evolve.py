"""``evolve``: search training settings and architectures with Optuna, each trial a training run of the engine;
``evolve workers|list|show|best|export`` join a study, and read what it found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from engine.errors import LLModelError
from engine.workspace import workspace_root
from llmodel_app.cli.console import out, print_json, success
from llmodel_app.cli.jobs import DetachOption, WorkspaceOption, check_outcome, run_job
from llmodel_app.cli.reading import read

if TYPE_CHECKING:
    from engine.evolve.study import StudySettings

evolve_app = typer.Typer(
    help="Evolutionary search over training settings and architectures (Optuna studies; each trial a run).",
    invoke_without_command=True,
)

Study = Annotated[str, typer.Argument(help="The study's name.")]
Storage = Annotated[
    str | None,
    typer.Option(
        help="Optuna storage URL (postgresql://…, sqlite:///…) or journal file shared by every worker "
        "(default: the study's journal in the workspace)."
    ),
]
DataPaths = Annotated[
    list[Path] | None,
    typer.Option(
        help="A prepared dataset directory, or raw text/JSONL files (prepared once, with --tokenizer-path)."
    ),
]
TokenizerPath = Annotated[Path | None, typer.Option(help="Tokenizer directory (default: the dataset's).")]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@evolve_app.callback()
def evolve(
    ctx: typer.Context,
    space: Annotated[
        str | None, typer.Option(help="hpo, nas, both, or a YAML/JSON search-space file.")
    ] = None,
    data_path: DataPaths = None,
    tokenizer_path: TokenizerPath = None,
    objectives: Annotated[
        str, typer.Option(help="val_loss, then optionally params, latency or tokens_per_s (comma-separated).")
    ] = "val_loss",
    trials: Annotated[
        int, typer.Option(help="Trials to complete (rejected and failed ones do not count).")
    ] = 20,
    trial_budget: Annotated[
        str, typer.Option(help="Each trial's training: steps (200), minutes (2m) or seconds (90s).")
    ] = "100",
    sampler: Annotated[
        str | None,
        typer.Option(
            help="nsga2, evolution (regularized), tpe or random (default: nsga2, or evolution for one objective)."
        ),
    ] = None,
    population: Annotated[int, typer.Option(help="Population of NSGA-II and of regularized evolution.")] = 10,
    study: Annotated[
        str | None, typer.Option(help="The study's name (default: the space and the time).")
    ] = None,
    storage: Storage = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the study --study after a stop or a crash.")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Seed of the sampler.")] = None,
    max_params: Annotated[
        int | None, typer.Option(help="Parameter budget: larger architectures are rejected before training.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="Base model config the space varies (default: the nano preset).")
    ] = None,
    train_config: Annotated[
        Path | None, typer.Option(help="Base training settings (JSON) the space varies (batch, seq_len, …).")
    ] = None,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
    detach: Annotated[bool, DetachOption] = False,
) -> None:
    """Run a study: each trial trains a model (kind `trial` in `runs list`) on the trial budget and reports its
    objectives; Ctrl-C offers to cancel (continue later with --resume) or detach."""
    if ctx.invoked_subcommand is not None:
        return
    if space is None or not data_path:
        raise LLModelError(
            "give --space (hpo, nas, both or a file) and --data-path; see `llmodel evolve --help`"
        )
    from engine.specs import study_spec

    base_train = _read_json(train_config) if train_config is not None else None
    spec = study_spec(
        workspace_root(workspace),
        space=space,
        data_paths=data_path,
        tokenizer_path=tokenizer_path,
        objectives=objectives,
        trials=trials,
        trial_budget=trial_budget,
        sampler=sampler,
        population=population,
        seed=seed,
        max_params=max_params,
        base_model=_base_model(config),
        base_train=base_train,
        name=study,
        storage=storage,
        resume=resume,
    )
    _finish(run_job(workspace, spec, detach=detach), spec.study, spec.storage)


@evolve_app.command("workers")
def workers(
    study: Annotated[str, typer.Option(help="The study to join.")],
    storage: Storage = None,
    data_path: DataPaths = None,
    tokenizer_path: TokenizerPath = None,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
    detach: Annotated[bool, DetachOption] = False,
) -> None:
    """Join an existing study from this process or machine: run its trials (with the settings stored in the study)
    until it has them all. Give --data-path where this machine keeps the data elsewhere."""
    from engine.evolve.study import load_study
    from engine.specs import join_study_spec

    spec = join_study_spec(
        workspace_root(workspace),
        study,
        storage=storage,
        data_paths=data_path or (),
        tokenizer_path=tokenizer_path,
    )
    load_study(spec.study, spec.storage)  # a missing study or an unreachable storage fails here, in one line
    _finish(run_job(workspace, spec, detach=detach), spec.study, spec.storage)


@evolve_app.command("list")
def list_studies(
    as_json: JsonOutput = False, workspace: Annotated[Path | None, WorkspaceOption] = None
) -> None:
    """The workspace's studies: storage, trials complete and running."""
    rows = read(workspace_root(workspace), lambda reader: reader.studies())
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no studies yet; start one with `llmodel evolve --space hpo --data-path DATASET`")
        return
    table = Table(box=None, header_style="bold")
    for column in ("study", "trials", "complete", "running", "sampler", "objectives", "storage"):
        table.add_column(column)
    for row in rows:
        settings = row["settings"]
        table.add_row(
            row["name"],
            str(row["trials"]),
            f"{row['complete']}/{settings.get('n_trials', '?')}",
            str(row["running"]),
            settings.get("sampler", ""),
            ",".join(settings.get("objectives", [])),
            row["storage"],
        )
    out.print(table)


@evolve_app.command("show")
def show(
    study: Study,
    storage: Storage = None,
    as_json: JsonOutput = False,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
) -> None:
    """Every trial (state, parameters, objectives), the Pareto front or best-so-far, and parameter importances."""
    from engine.evolve import report

    loaded, settings = _load(study, storage, workspace)
    rows = report.trial_rows(loaded, settings)
    front = report.pareto_front(loaded)
    weights = report.importances(loaded)
    if as_json:
        print_json(
            {
                "study": study,
                "settings": settings.to_dict(),
                "trials": [r.to_dict() for r in rows],
                "pareto_front": [t.number for t in front],
                "best_so_far": report.best_so_far(loaded),
                "importances": weights,
            }
        )
        return
    out.print(_trials_table(rows, settings, {t.number for t in front}))
    counts = {
        state: sum(1 for r in rows if r.state == state)
        for state in ("complete", "running", "failed", "pruned", "rejected")
    }
    out.print(", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no trials yet")
    if len(settings.objectives) > 1:
        out.print(
            f"Pareto front ({' vs '.join(settings.objectives)}): trials {', '.join(str(t.number) for t in front)}"
        )
    else:
        curve = report.best_so_far(loaded)
        if curve:
            out.print("best so far: " + " → ".join(f"{v:.4f} (#{n})" for n, v in _improvements(curve)))
    if weights:
        out.print("importance for val_loss: " + ", ".join(f"{k} {v:.2f}" for k, v in weights.items()))


@evolve_app.command("best")
def best(
    study: Study,
    storage: Storage = None,
    as_json: JsonOutput = False,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
) -> None:
    """The best trial (one objective) or the Pareto front (several), with their settings."""
    from engine.evolve import report

    loaded, settings = _load(study, storage, workspace)
    front = report.pareto_front(loaded)
    if not front:
        raise LLModelError(f"study {study} has no complete trial yet; see `llmodel evolve show {study}`")
    rows = [r for r in report.trial_rows(loaded, settings) if r.number in {t.number for t in front}]
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    out.print(_trials_table(rows, settings, {r.number for r in rows}))


@evolve_app.command("export")
def export(
    study: Study,
    trial: Annotated[
        int | None, typer.Option(help="The trial (default: the lowest validation loss).")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Folder for model.json and train.json.")] = None,
    storage: Storage = None,
    workspace: Annotated[Path | None, WorkspaceOption] = None,
) -> None:
    """Write a trial's model config and training settings as files `llmodel pretrain` takes."""
    from engine.evolve.report import export_configs, pick_trial

    root = workspace_root(workspace)
    loaded, settings = _load(study, storage, workspace)
    chosen = pick_trial(loaded, trial)
    folder = output or root / "configs" / f"{study}-trial{chosen.number}"
    model_path, train_path = export_configs(settings, chosen, folder)
    success(f"trial {chosen.number}: wrote {model_path} and {train_path}")
    out.print(
        f"train it: llmodel pretrain --config {model_path} --train-config {train_path} --data-path {settings.data_path}"
    )


def _finish(final: dict[str, Any], name: str, url: str) -> None:
    result = check_outcome(final)
    if result:
        success(
            f"study {name}: {result['completed']} trials completed here ({result['rejected']} rejected before "
            f"training, {result['failed']} failed, {result['pruned']} pruned); see `llmodel evolve show {name}`"
        )


def _load(study: str, storage: str | None, workspace: Path | None) -> tuple[Any, StudySettings]:
    from engine.evolve.study import load_study, storage_url

    root = workspace_root(workspace)
    _check_name(study)
    if storage is None:  # a study this workspace ran keeps its storage in the catalog
        known = {row["name"]: row["storage"] for row in read(root, lambda reader: reader.studies())}
        storage = known.get(study)
    return load_study(study, storage_url(root, study, storage))


def _check_name(name: str) -> None:
    from engine.workspace import validate_name

    validate_name(name, "study")


def _base_model(path: Path | None) -> dict[str, Any]:
    from engine.model.config import ModelConfig

    config = ModelConfig.load(path) if path is not None else ModelConfig.from_preset("nano")
    return config.to_dict()


def _read_json(path: Path) -> dict[str, Any]:
    """A training settings file's content (what a study's trials train with, over the trial defaults)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise LLModelError(f"training config {path}: {error}") from None
    if not isinstance(data, dict):
        raise LLModelError(f"training config {path}: expected a JSON object")
    return data


def _improvements(curve: list[tuple[int, float]]) -> list[tuple[int, float]]:
    steps, last = [], None
    for number, value in curve:
        if value != last:
            steps.append((number, value))
            last = value
    return steps


def _trials_table(rows: list[Any], settings: StudySettings, front: set[int]) -> Table:
    table = Table(box=None, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("state")
    for name in settings.objectives:
        table.add_column(name, justify="right")
    table.add_column("parameters", justify="right")
    table.add_column("settings")
    for row in rows:
        mark = "*" if row.number in front else ""
        values = [f"{row.objectives[o]:.4g}" if o in row.objectives else "" for o in settings.objectives]
        detail = ", ".join(f"{k}={_short(v)}" for k, v in sorted(row.params.items()))
        if row.reason and row.state != "complete":
            detail = f"{detail}  [dim]({row.reason})[/dim]"
        parameters = f"{row.parameters:,}" if row.parameters else ""
        table.add_row(f"{row.number}{mark}", row.state, *values, parameters, detail)
    return table


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
