"""Launch a tokenizer, dataset, pretraining or fine-tuning job: a form per kind, checked, then submitted to the
engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Vertical, VerticalScroll
from textual.widgets import Button, ContentSwitcher, Input, Label, Select, SelectionList, Static
from textual.worker import Worker

from engine.errors import LLModelError
from engine.finetune.config import (
    ATTENTION_TARGETS,
    MLP_TARGETS,
    FinetuneSettings,
    target_names,
    training_defaults,
)
from engine.finetune.sizing import finetune_size
from engine.model.config import ModelConfig
from engine.training.config import TrainConfig
from llmodel_app.tui.components.field_input import FieldInput
from llmodel_app.tui.components.file_picker import FilePicker
from llmodel_app.tui.components.job_progress import JobProgress
from llmodel_app.tui.components.model_picker import base_checkpoint, model_choices
from llmodel_app.tui.errors import report_worker_error
from llmodel_app.tui.messages import JobSubmitted

DEFAULT_TRAIN = TrainConfig()
KINDS = (
    ("Pretrain a model", "pretrain"),
    ("Fine-tune a model", "finetune"),
    ("Train a tokenizer", "tokenizer"),
    ("Prepare a dataset", "dataset"),
)
METHODS = (("LoRA: an adapter over the frozen base", "lora"), ("QLoRA: LoRA over a 4-bit NF4 base", "qlora"),
           ("full: every weight trains", "full"))  # fmt: skip
TARGET_CHOICES = (
    ("q_proj, v_proj", "q_proj,v_proj"),
    ("all-linear", "all-linear"),
    ("the ones ticked below", "chosen"),
)


def short_rate(value: float) -> str:
    """A learning rate as one would type it: 2e-4, not 2e-04 or 0.0002."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def split_paths(text: str) -> list[str]:
    """Comma-separated paths, made absolute; each must exist."""
    paths = [Path(p.strip()).expanduser() for p in text.split(",") if p.strip()]
    if not paths:
        raise LLModelError("enter at least one input file or directory")
    for path in paths:
        if not path.exists():
            raise LLModelError(f"{path} does not exist")
    return [str(p.resolve()) for p in paths]


def number(text: str, kind: type, label: str, *, optional: bool = False) -> Any:
    text = text.strip()
    if not text and optional:
        return None
    try:
        return kind(text)
    except ValueError:
        raise LLModelError(f"{label} must be a number, got {text!r}") from None


def measured_speed(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest run that recorded its speed: its id, device, tokens/s and the training FLOP/s they make."""
    for run in runs:  # newest first
        info, metrics = run.get("info") or {}, run.get("metrics") or {}
        if info.get("flops_per_token") and metrics.get("tokens_per_s"):
            tokens_per_s = float(metrics["tokens_per_s"])
            return {"run": run["id"], "device": info.get("device"), "tokens_per_s": tokens_per_s,
                    "flops": float(info["flops_per_token"]) * tokens_per_s}  # fmt: skip
    return None


def evaluations(settings: dict[str, Any]) -> int:
    """How many times the trainer evaluates: every ``eval_interval`` steps, and once more at a last odd step."""
    return -(-settings["max_steps"] // settings.get("eval_interval", DEFAULT_TRAIN.eval_interval))


def run_cost(config: dict[str, Any], settings: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """What a pretraining run will cost: tokens per step, in all and for its evaluations, and the time at the
    speed this machine measured (which run, which tokens/s)."""
    model = ModelConfig.from_dict(config, source="the chosen config")
    seq_len = settings.get("seq_len") or model.max_len
    batch = settings["batch_size"]
    per_step = batch * seq_len * settings.get("gradient_accumulation_steps", 1)
    total = per_step * settings["max_steps"]
    count, batches = evaluations(settings), settings.get("eval_batches", DEFAULT_TRAIN.eval_batches)
    eval_tokens = count * batches * batch * seq_len
    cost = (
        f"{per_step:,} tokens/step ({batch} × {seq_len}) · {total:,} tokens in all · "
        f"{count} evaluation{'s' * (count != 1)} × {batches} batches: {eval_tokens:,} tokens, forward only"
    )
    speed = measured_speed(runs)
    if speed is None:
        return cost + "\ntime: known once a first run has measured this machine's speed"
    training_flops = model.flops_per_token(seq_len)
    train_s = total * training_flops / speed["flops"]
    eval_s = eval_tokens * training_flops / 3 / speed["flops"]  # a forward pass: a third of a training step
    on = f" on {speed['device']}" if speed.get("device") else ""
    return cost + (
        f"\ntime ≈ {_duration(train_s + eval_s)} ({_duration(train_s)} training + {_duration(eval_s)} evaluating), "
        f"assuming the {speed['tokens_per_s']:,.0f} tokens/s that {speed['run']} reached{on} "
        f"({speed['flops'] / 1e9:.0f} GFLOP/s; ≈ {speed['flops'] / training_flops:,.0f} tokens/s on this model)"
    )


def finetune_cost(config: dict[str, Any], settings: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """What a fine-tuning run will cost: as a pretraining run's with ``max_steps``; without it the steps come from
    the epochs over the data, which only the job counts."""
    if settings.get("max_steps"):
        return run_cost(config, settings, runs)
    model = ModelConfig.from_dict(config, source="the base's model config")
    seq_len = min(settings.get("seq_len") or model.max_len, model.max_len)
    batch = settings["batch_size"]
    per_step = batch * seq_len * settings.get("gradient_accumulation_steps", 1)
    epochs = settings.get("epochs", 1.0)
    return (
        f"{per_step:,} tokens/step at most ({batch} × {seq_len}) · {epochs:g} epoch{'s' * (epochs != 1)} over the "
        "data: the job counts its steps once it has read the data (give max_steps to see the time now)"
    )


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class JobLauncher(VerticalScroll):
    DEFAULT_CSS = """
    JobLauncher { padding: 1 2; }
    JobLauncher Grid { grid-size: 2; grid-columns: 24 1fr; height: auto; grid-rows: 1; grid-gutter: 0 1; }
    JobLauncher Grid Label { padding: 0; }
    JobLauncher ContentSwitcher { height: auto; }
    JobLauncher ContentSwitcher > Vertical { height: auto; }
    JobLauncher #launch-error { color: $error; height: auto; margin: 1 0; }
    JobLauncher #launch-cost, JobLauncher #finetune-cost { height: auto; margin: 1 0 0 0; color: $text-muted; }
    JobLauncher #finetune-target-list { height: auto; max-height: 9; margin: 0 0 0 25; display: none; }
    JobLauncher #finetune-target-list.-shown { display: block; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.configs: dict[str, dict[str, Any]] = {}
        self.runs: list[dict[str, Any]] = []
        # run id → its model config (from /api/runs/{id}), or why it could not be read
        self.base_configs: dict[str, dict[str, Any] | str] = {}

    def compose(self) -> ComposeResult:
        yield Select(KINDS, value="pretrain", allow_blank=False, id="launch-kind", compact=True)
        with ContentSwitcher(initial="form-pretrain"):
            with Vertical(id="form-pretrain"):
                with Grid():
                    yield Label("model config")
                    yield Select([], prompt="a saved config", id="pretrain-config", compact=True)
                    yield Label("dataset")
                    yield Select([], prompt="a prepared dataset", id="pretrain-dataset", compact=True)
                    for name, default in (("max_steps", "200"), ("batch_size", "8"), ("seq_len", ""),
                                          ("learning_rate", "3e-4"), ("warmup_steps", "20"), ("eval_interval", "50"),
                                          ("eval_batches", str(DEFAULT_TRAIN.eval_batches)),
                                          ("checkpoint_interval", "100"), ("device", "auto")):  # fmt: skip
                        yield Label(name + (" (blank: max_len)" if name == "seq_len" else ""))
                        yield FieldInput(default, id=f"pretrain-{name}", compact=True)
                yield Static("", id="launch-cost")
            with Vertical(id="form-finetune"):
                with Grid():
                    yield Label("base checkpoint")
                    yield Select([], prompt="a trained checkpoint", id="finetune-base", compact=True)
                    yield Button("data files…", id="finetune-browse", compact=True)
                    yield FieldInput(
                        placeholder="blank: the embedded instruction set", id="finetune-data", compact=True
                    )
                    yield Label("method")
                    yield Select(METHODS, value="lora", allow_blank=False, id="finetune-method", compact=True)
                with Grid(id="finetune-lora"):
                    yield Label("rank")
                    yield FieldInput("16", id="finetune-lora_rank", compact=True)
                    yield Label("alpha")
                    yield FieldInput("16", id="finetune-lora_alpha", compact=True)
                    yield Label("adapter name")
                    yield FieldInput(
                        placeholder="blank: the run id", id="finetune-adapter_name", compact=True
                    )
                    yield Label("targets")
                    yield Select(TARGET_CHOICES, value="q_proj,v_proj", allow_blank=False, id="finetune-targets",
                                 compact=True)  # fmt: skip
                yield SelectionList[str](*((name, name) for name in (*ATTENTION_TARGETS, *MLP_TARGETS)),
                                         id="finetune-target-list", compact=True)  # fmt: skip
                with Grid():
                    for name, default in (("epochs", "1"), ("max_steps", ""), ("learning_rate", short_rate(training_defaults("lora")["learning_rate"])),
                                          ("batch_size", "4"), ("device", "auto")):  # fmt: skip
                        yield Label(name)
                        yield FieldInput(default, placeholder="blank: the epochs decide" if name == "max_steps" else "",
                                         id=f"finetune-{name}", compact=True)  # fmt: skip
                yield Static("", id="finetune-cost")
            with Vertical(id="form-tokenizer"), Grid():
                yield Button("input files…", id="tokenizer-browse", compact=True)
                yield FieldInput(placeholder="corpus.txt, more.jsonl", id="tokenizer-inputs", compact=True)
                yield Label("name")
                yield FieldInput("my-tokenizer", id="tokenizer-name", compact=True)
                yield Label("vocab size")
                yield FieldInput("8000", id="tokenizer-vocab_size", compact=True)
            with Vertical(id="form-dataset"), Grid():
                yield Button("input files…", id="dataset-browse", compact=True)
                yield FieldInput(placeholder="corpus.txt, more.jsonl", id="dataset-inputs", compact=True)
                yield Label("tokenizer")
                yield Select([], prompt="a tokenizer", id="dataset-tokenizer", compact=True)
                yield Label("name")
                yield FieldInput("my-dataset", id="dataset-name", compact=True)
                yield Label("validation fraction")
                yield FieldInput("0.005", id="dataset-val_fraction", compact=True)
        yield Static("", id="launch-error")
        yield Button("Submit the job", id="launch-submit", variant="primary")
        yield JobProgress(stage_id="launch-stage", bar_id="launch-bar", id="launch-progress")

    def on_mount(self) -> None:
        self.query_one(JobProgress).display = False
        self.call_after_refresh(self._catch_up)

    def show_kind(self, kind: str) -> None:
        """Show the form of ``kind`` (pretrain, finetune, tokenizer, dataset)."""
        self.query_one("#launch-kind", Select).value = kind

    @property
    def following(self) -> str | None:
        """The run id of the job submitted last from here, whose progress shows under the form."""
        return self.query_one(JobProgress).run_id

    def job_event(self, event: dict[str, Any]) -> None:
        """An event of the followed job (routed here by the app)."""
        self.query_one(JobProgress).event(event)

    def _catch_up(self) -> None:
        """Mounted lazily (once the widgets inside have mounted too): take what the app already knows."""
        self.show_workspace(getattr(self.app, "workspace_data", {}))

    def show_workspace(self, data: dict[str, Any]) -> None:
        """Fill the choices from the workspace listings (and configs saved by the editor this session)."""
        self.set_artifacts(data, getattr(self.app, "saved_configs", {}))

    def set_artifacts(self, data: dict[str, Any], saved_configs: dict[str, dict[str, Any]]) -> None:
        self.configs = {
            c["name"]: c.get("data") or {}
            for c in data.get("configs", [])
            if c.get("kind", "model") == "model"
        }
        self.configs.update(saved_configs)
        self.runs = data.get("runs", [])
        refill_select(self.query_one("#pretrain-config", Select), [(n, n) for n in self.configs])
        refill_select(
            self.query_one("#pretrain-dataset", Select),
            [(d["name"], d["path"]) for d in data.get("datasets", [])],
        )
        refill_select(
            self.query_one("#dataset-tokenizer", Select),
            [(t["name"], t["path"]) for t in data.get("tokenizers", [])],
        )
        refill_select(
            self.query_one("#finetune-base", Select),
            [(label.strip(), path) for label, path in model_choices(self.runs)],
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "launch-kind" and isinstance(event.value, str):
            self.query_one(ContentSwitcher).current = f"form-{event.value}"
            self.query_one("#launch-error", Static).update("")
        elif event.select.id == "finetune-method" and isinstance(event.value, str):
            self._method_changed(event.value)
        elif event.select.id == "finetune-targets":
            self.query_one("#finetune-target-list").set_class(event.value == "chosen", "-shown")
        self._show_cost()
        self._show_finetune_cost()

    def on_input_changed(self, event: Input.Changed) -> None:
        if (event.input.id or "").startswith("pretrain-"):
            self._show_cost()
        elif (event.input.id or "").startswith("finetune-"):
            self._show_finetune_cost()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        self._show_finetune_cost()

    # -- fine-tuning ------------------------------------------------------------------------------------

    def _method_changed(self, method: str) -> None:
        """LoRA settings only for an adapter; the learning rate follows the method while it is a default one."""
        self.query_one("#finetune-lora").display = method != "full"
        self.query_one("#finetune-target-list").set_class(
            method != "full" and self.query_one("#finetune-targets", Select).value == "chosen", "-shown"
        )
        rate = self.query_one("#finetune-learning_rate", Input)
        try:
            typed = float(rate.value)
        except ValueError:
            return
        if typed in {training_defaults(m)["learning_rate"] for _, m in METHODS}:
            rate.value = short_rate(training_defaults(method)["learning_rate"])

    def _base_run(self, path: str) -> str | None:
        """The id of the run a picked checkpoint (or run folder) belongs to."""
        for run in self.runs:
            if path == run.get("run_dir") or any(c["path"] == path for c in run.get("checkpoints") or []):
                return str(run["id"])
        return None

    def _show_finetune_cost(self) -> None:
        """What the fine-tuning run trains (trainable of all parameters) and what it costs, before it starts."""
        if not self.is_mounted or not self.query("#finetune-cost"):
            return
        cost = self.query_one("#finetune-cost", Static)
        base = self.query_one("#finetune-base", Select).value
        if not isinstance(base, str):
            cost.update("choose the checkpoint to fine-tune (train a model first)")
            return
        run_id = self._base_run(base)
        if run_id is None or run_id not in self.base_configs:
            cost.update("reading the base's model config…")
            if run_id is not None:
                self._load_base_config(run_id)
            return
        config = self.base_configs[run_id]
        if isinstance(config, str):
            cost.update(f"cost: {config}")
            return
        try:
            spec = self.spec("finetune")
            settings = spec["finetune"]
            size = finetune_size(
                config, settings["method"], rank=settings["lora_rank"], targets=settings["target_modules"]
            )
            text = size.describe()
            if settings["method"] != "full":
                text += f" · rank {settings['lora_rank']} on {', '.join(target_names(settings['target_modules']))}"
            cost.update(f"{text}\n{finetune_cost(config, spec['train_config'], self.runs)}")
        except LLModelError as problem:
            cost.update(f"cost: {problem}")

    @work(thread=True, exclusive=True, exit_on_error=False, group="launch-base")
    def _load_base_config(self, run_id: str) -> None:
        client = self.app.client  # type: ignore[attr-defined]
        if client is None:
            return
        try:
            config = (client.get(f"/api/runs/{run_id}").get("config") or {}).get("model_config")
        except LLModelError as error:
            config = f"the base's model config could not be read ({error})"
        self.app.call_from_thread(
            self._base_config_loaded, run_id, config or f"run {run_id} records no model config"
        )

    def _base_config_loaded(self, run_id: str, config: dict[str, Any] | str) -> None:
        self.base_configs[run_id] = config
        self._show_finetune_cost()

    def _show_cost(self) -> None:
        """The run's cost under the pretrain form, or what is missing to tell it."""
        cost = self.query_one("#launch-cost", Static)
        try:
            spec = self.spec("pretrain")
        except LLModelError as problem:
            cost.update(f"cost: {problem}")
            return
        cost.update(run_cost(spec["model_config"], spec["train_config"], self.runs))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id in ("tokenizer-browse", "dataset-browse"):
            self._browse(self.query_one(f"#{event.button.id.split('-')[0]}-inputs", Input))
            return
        if event.button.id == "finetune-browse":
            self._browse(self.query_one("#finetune-data", Input))
            return
        if event.button.id != "launch-submit":
            return
        kind = self.query_one("#launch-kind", Select).value
        error = self.query_one("#launch-error", Static)
        try:
            spec = self.spec(str(kind))
        except LLModelError as problem:
            error.update(str(problem))
            return
        error.update("")
        self._submit(str(kind), spec)

    def _browse(self, target: Input) -> None:
        """Pick files in a modal; they replace the comma-separated list in ``target``."""
        chosen = [p.strip() for p in target.value.split(",") if p.strip()]

        def picked(paths: list[str] | None) -> None:
            if paths:
                target.value = ", ".join(paths)

        self.app.push_screen(FilePicker(Path.cwd(), chosen), picked)

    def spec(self, kind: str) -> dict[str, Any]:
        """The job spec, as the matching CLI command builds it; raises a one-line error for a bad field. (A
        fine-tuning spec without data files gets the embedded instruction set's path when it is submitted.)"""
        workspace: Path = self.app.workspace  # type: ignore[attr-defined]
        value = lambda name: self.query_one(f"#{kind}-{name}", Input).value  # noqa: E731
        if kind == "finetune":
            return self._finetune_spec(workspace, value)
        if kind == "tokenizer":
            return {"inputs": split_paths(value("inputs")), "output": str(workspace / "tokenizers" / value("name").strip()),
                    "vocab_size": number(value("vocab_size"), int, "vocab size")}  # fmt: skip
        if kind == "dataset":
            tokenizer = self.query_one("#dataset-tokenizer", Select).value
            if not isinstance(tokenizer, str):
                raise LLModelError("choose a tokenizer")
            return {"inputs": split_paths(value("inputs")), "tokenizer_path": tokenizer,
                    "output": str(workspace / "datasets" / value("name").strip()),
                    "val_fraction": number(value("val_fraction"), float, "validation fraction")}  # fmt: skip
        config = self.query_one("#pretrain-config", Select).value
        dataset = self.query_one("#pretrain-dataset", Select).value
        if not isinstance(config, str) or config not in self.configs:
            raise LLModelError("choose a model config (save one in the Config tab)")
        if not isinstance(dataset, str):
            raise LLModelError("choose a dataset (prepare one first)")
        settings = {
            "max_steps": number(value("max_steps"), int, "max_steps"),
            "batch_size": number(value("batch_size"), int, "batch_size"),
            "seq_len": number(value("seq_len"), int, "seq_len", optional=True),
            "learning_rate": number(value("learning_rate"), float, "learning_rate"),
            "warmup_steps": number(value("warmup_steps"), int, "warmup_steps"),
            "eval_interval": number(value("eval_interval"), int, "eval_interval"),
            "eval_batches": number(value("eval_batches"), int, "eval_batches"),
            "checkpoint_interval": number(value("checkpoint_interval"), int, "checkpoint_interval"),
            "device": value("device").strip() or "auto",
        }
        train = TrainConfig.from_dict(settings, source="training settings")
        return {"model_config": {k: v for k, v in self.configs[config].items()}, "train_config": train.to_dict(),
                "data_paths": [dataset], "tokenizer_path": None, "cache_root": str(workspace / "datasets")}  # fmt: skip

    def _finetune_spec(self, workspace: Path, value: Any) -> dict[str, Any]:
        """As ``llmodel finetune`` / ``lora-finetune`` (llmodel_app/cli/commands_finetune.py) builds it, with the
        form's fields as the flags typed."""
        base = self.query_one("#finetune-base", Select).value
        checkpoint = base_checkpoint(base, self.runs) if isinstance(base, str) else None
        if checkpoint is None:
            raise LLModelError("choose the checkpoint to fine-tune (train a model first)")
        method = str(self.query_one("#finetune-method", Select).value)
        choice = self.query_one("#finetune-targets", Select).value
        targets = (
            list(self.query_one("#finetune-target-list", SelectionList).selected)
            if choice == "chosen"
            else str(choice).split(",")
        )
        rank = number(value("lora_rank"), int, "rank")
        alpha = number(value("lora_alpha"), float, "alpha")
        finetune = FinetuneSettings(  # a bad rank, alpha or target fails here, in one line
            method=method, lora_rank=rank, lora_alpha=alpha, target_modules=targets,
            adapter_name=value("adapter_name").strip() or None,
        ).to_dict()  # fmt: skip
        settings = {
            **training_defaults(method),
            "epochs": number(value("epochs"), float, "epochs"),
            "max_steps": number(value("max_steps"), int, "max_steps", optional=True),
            "learning_rate": number(value("learning_rate"), float, "learning_rate"),
            "batch_size": number(value("batch_size"), int, "batch_size"),
            "device": value("device").strip() or "auto",
        }
        train = TrainConfig.from_dict(settings, source="training settings")
        data = value("data")
        return {"base": checkpoint, "data_paths": split_paths(data) if data.strip() else [], "val_paths": [], "tokenizer_path": None,
                "finetune": finetune, "train_config": train.to_dict(), "adapters_dir": str(workspace / "adapters")}  # fmt: skip

    @work(thread=True, exclusive=True, exit_on_error=False, group="launch")
    def _submit(self, kind: str, spec: dict[str, Any]) -> None:
        client = self.app.client  # type: ignore[attr-defined]
        if client is None:
            raise LLModelError("not connected to the engine")
        run_id = client.submit(kind, spec)
        self.app.call_from_thread(self.query_one(JobProgress).follow, run_id, kind)
        self.post_message(JobSubmitted(run_id, kind))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)


def refill_select(select: Select[str], options: list[tuple[str, str]]) -> None:
    """New options for ``select``, keeping its value while it is still offered (else the first option)."""
    if not select.query("SelectOverlay"):  # the Select's own parts are not mounted yet
        select.call_after_refresh(refill_select, select, options)
        return
    current = select.value
    select.set_options(options)
    if isinstance(current, str) and current in {v for _, v in options}:
        select.value = current
    elif options:
        select.value = options[0][1]
