"""Job specs: one typed spec per kind, one builder each, and the engine's check of a posted spec on arrival.

A spec the engine cannot run is answered 422 with one line naming the field — unknown key, wrong type, an integer
no counter holds, a missing field, file or checkpoint — before any run folder or process exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.catalog import Catalog
from engine.client import EngineClient
from engine.daemon.app import create_app
from engine.daemon.broker import Broker
from engine.daemon.jobs import read_job
from engine.daemon.record import EngineRecord
from engine.daemon.supervisor import Supervisor
from engine.finetune.config import FinetuneSettings, training_defaults
from engine.model.config import ModelConfig
from engine.runs.checkpoint import MARKER, META
from engine.specs import (
    SPECS,
    EvaluateSpec,
    FinetuneSpec,
    JobSpec,
    PretrainSpec,
    SpecError,
    benchmark_spec,
    dataset_spec,
    evaluate_spec,
    finetune_spec,
    parse_spec,
    pretrain_spec,
    quickstart_spec,
    task_order,
    tokenizer_spec,
    trial_training,
)
from engine.training.config import TrainConfig

TOKEN = "secret"


def fake_checkpoint(folder: Path, *, complete: bool = True) -> Path:
    """A checkpoint folder as the engine's checks see one: meta.json, and the marker once it is complete."""
    folder.mkdir(parents=True)
    (folder / META).write_text(json.dumps({"files": {}, "model_config": {}}), encoding="utf-8")
    if complete:
        (folder / MARKER).write_text("", encoding="utf-8")
    return folder


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("def f():\n    return 1\n", encoding="utf-8")
    dataset, tokenizer = tmp_path / "dataset", tmp_path / "tokenizer"
    dataset.mkdir()
    tokenizer.mkdir()
    run = tmp_path / "base-run"
    checkpoint = fake_checkpoint(run / "checkpoints" / "step-00000010")
    return {
        "corpus": corpus,
        "dataset": dataset,
        "tokenizer": tokenizer,
        "run": run,
        "checkpoint": checkpoint,
    }


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[EngineClient, Supervisor]]:
    """The engine's client and API, in this process, over a supervisor whose loop never runs: a queued job stays
    queued."""
    workspace = tmp_path / "workspace"
    (workspace / "runs").mkdir(parents=True)
    broker = Broker()
    record = EngineRecord(
        pid=0, host="testserver", port=80, token=TOKEN, workspace=str(workspace), started=0.0
    )
    with Catalog.open(workspace) as catalog:
        supervisor = Supervisor(workspace, catalog, broker)
        with EngineClient(record, http=TestClient(create_app(supervisor, broker, TOKEN))) as client:
            yield client, supervisor


class Posted(JobSpec):
    """Whatever a client might post as the spec of a job of ``kind``."""

    def __init__(self, kind: str, data: Any) -> None:
        self.kind, self.data = kind, data

    def to_dict(self) -> Any:
        return self.data


def valid_pretrain(files: dict[str, Path], workspace: Path) -> dict[str, Any]:
    spec = pretrain_spec(
        ModelConfig.from_preset("nano"), {"max_steps": 5}, [files["dataset"]], workspace=workspace
    )
    return spec.to_dict()


def valid_finetune(files: dict[str, Path], workspace: Path) -> dict[str, Any]:
    return finetune_spec(files["run"], {"method": "lora"}, workspace=workspace).to_dict()


# -- hostile specs: 422, one line naming the field, nothing created ------------------------------------------------


def hostile(files: dict[str, Path], workspace: Path) -> list[tuple[str, str, dict[str, Any], str]]:
    """(case, kind, spec, what the one-line answer must say)."""
    pretrain, finetune = valid_pretrain(files, workspace), valid_finetune(files, workspace)
    return [
        ("unknown key", "pretrain", {**pretrain, "max_stepz": 3}, "unknown key 'max_stepz'"),
        (
            "unknown nested key",
            "pretrain",
            {**pretrain, "train_config": {"lr": 1.0}},
            "unknown config key 'lr'",
        ),
        (
            "wrong type",
            "pretrain",
            {**pretrain, "data_paths": str(files["dataset"])},
            "data_paths must be a list",
        ),
        ("wrong element", "pretrain", {**pretrain, "data_paths": [7]}, "data_paths[0] must be str"),
        (
            "wrong nested type",
            "finetune",
            {**finetune, "finetune": {"lora_rank": "big"}},
            "lora_rank must be int",
        ),
        (
            "huge int",
            "pretrain",
            {**pretrain, "train_config": {"max_steps": 10**40}},
            "train_config.max_steps",
        ),
        (
            "missing field",
            "pretrain",
            {k: v for k, v in pretrain.items() if k != "data_paths"},
            "'data_paths'",
        ),
        (
            "missing checkpoint",
            "finetune",
            {**finetune, "base": str(files["run"] / "nope")},
            "base: checkpoint path",
        ),
        (
            "missing file",
            "pretrain",
            {**pretrain, "data_paths": ["/no/such/data"]},
            "data_paths: /no/such/data",
        ),
        ("not an object", "evaluate", [1, 2], "expected a JSON object"),
        ("unknown kind", "distill", {}, "unknown job kind 'distill'"),
    ]


def test_a_hostile_spec_is_a_422_naming_the_field_and_no_run_is_made(daemon, files):
    client, supervisor = daemon
    for case, kind, spec, says in hostile(files, supervisor.workspace):
        with pytest.raises(SpecError) as refused:  # what the client raises for a 422
            client.submit_job(Posted(kind, spec))
        assert type(refused.value) is SpecError, case
        detail = str(refused.value)
        assert "\n" not in detail and says in detail, f"{case}: {detail}"
    assert not any((supervisor.workspace / "runs").iterdir()), "no run folder for a spec that was refused"
    assert supervisor.catalog.list_runs() == [] and supervisor.jobs == {}


def test_an_incomplete_checkpoint_is_refused_on_arrival(daemon, files):
    client, supervisor = daemon
    partial = fake_checkpoint(files["run"] / "checkpoints" / "step-00000020", complete=False)
    spec = {**valid_pretrain(files, supervisor.workspace), "resume_from": str(partial)}
    message = f"pretrain spec: resume_from: checkpoint {partial} is incomplete (no COMPLETE marker)"
    with pytest.raises(SpecError, match=f"^{re.escape(message)}$"):
        client.submit_job(Posted("pretrain", spec))


def test_a_good_spec_is_queued_and_its_job_reads_the_same_typed_spec_back(daemon, files):
    client, supervisor = daemon
    spec = finetune_spec(files["run"], {"method": "lora"}, workspace=supervisor.workspace)
    run_id = client.submit_job(spec)
    read = read_job(supervisor.workspace / "runs" / run_id)
    assert read == spec
    assert isinstance(read, FinetuneSpec)
    assert read.finetune.method == "lora" and read.train_config.learning_rate == 2e-4
    assert client.run(run_id)["status"] == "queued"


def test_a_resume_with_a_bad_spec_is_a_422_and_leaves_the_run_as_it_was(daemon, files):
    client, supervisor = daemon
    spec = parse_spec("pretrain", valid_pretrain(files, supervisor.workspace))
    run_id = supervisor.submit(spec)
    run_dir = supervisor.workspace / "runs" / run_id
    supervisor.jobs.clear()
    supervisor.catalog.update_run(run_id, status="cancelled")
    fake_checkpoint(run_dir / "checkpoints" / "step-00000002")
    recorded = (run_dir / "job.json").read_text(encoding="utf-8")

    bad = Posted("pretrain", {"train_config": {"max_steps": "more"}})
    with pytest.raises(
        SpecError, match=r"^pretrain spec: train_config: max_steps must be int, got str 'more'$"
    ):
        client.resume(run_id, bad)
    assert (run_dir / "job.json").read_text(encoding="utf-8") == recorded
    assert client.run(run_id)["status"] == "cancelled"

    assert client.resume(run_id, Posted("pretrain", {"train_config": {"max_steps": 9}}))["status"] == "queued"
    resumed = read_job(run_dir)
    assert isinstance(resumed, PretrainSpec)
    assert resumed.train_config.max_steps == 9 and resumed.resume_from == str(run_dir)


# -- the builders: what every front end calls ---------------------------------------------------------------------


def test_every_kind_has_a_spec_that_survives_json(files, tmp_path):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    built: list[JobSpec] = [
        tokenizer_spec([files["corpus"]], tmp_path / "tok", vocab_size=500),
        dataset_spec([files["corpus"]], files["tokenizer"], tmp_path / "ds", val_fraction=0.1),
        PretrainSpec.from_dict(valid_pretrain(files, workspace)),
        parse_spec("finetune", valid_finetune(files, workspace)),
        quickstart_spec(workspace, max_steps=20),
        evaluate_spec(files["run"], "stdlib-ppl"),
        benchmark_spec(files["checkpoint"], new_tokens=8),
    ]
    assert {spec.kind for spec in built} | {"evolve"} == set(SPECS)
    for spec in built:
        assert parse_spec(spec.kind, json.loads(json.dumps(spec.to_dict()))) == spec


def test_the_builders_make_paths_absolute_and_refuse_missing_inputs(files, tmp_path, monkeypatch):
    monkeypatch.chdir(files["corpus"].parent)
    spec = tokenizer_spec(["corpus.txt"], "tok")
    assert spec.inputs == [str(files["corpus"])] and spec.output == str(tmp_path / "tok")
    with pytest.raises(
        SpecError, match=r"^tokenizer spec: inputs: .*missing\.txt: no such file or directory"
    ):
        tokenizer_spec(["missing.txt"], "tok")


def test_a_fine_tuning_spec_starts_from_the_methods_defaults_and_resolves_a_run_to_its_checkpoint(
    files, tmp_path
):
    spec = finetune_spec(files["run"], FinetuneSettings(method="qlora"), {"max_steps": 3}, workspace=tmp_path)
    assert spec.base == str(files["checkpoint"])
    assert spec.train_config == TrainConfig.from_dict({**training_defaults("qlora"), "max_steps": 3})
    assert spec.adapters_dir == str(tmp_path / "adapters")
    with pytest.raises(SpecError, match=r"finetune spec: finetune\.adapter_name: invalid adapter name"):
        finetune_spec(files["run"], {"method": "lora", "adapter_name": "../x"}, workspace=tmp_path)


def test_an_evaluations_tasks_run_in_the_order_named_once_each_task_files_made_absolute(files, monkeypatch):
    monkeypatch.chdir(files["run"].parent)
    assert task_order("stdlib-ppl, stdlib-names,stdlib-ppl") == ["stdlib-ppl", "stdlib-names"]
    assert task_order(["mine.yaml", "stdlib-names"]) == [
        str(files["run"].parent / "mine.yaml"),
        "stdlib-names",
    ]
    spec = evaluate_spec(files["run"], "stdlib-names,stdlib-ppl,stdlib-names", limit=4)
    assert isinstance(spec, EvaluateSpec) and spec.tasks == ["stdlib-names", "stdlib-ppl"]
    assert spec.settings.limit == 4 and spec.model_path == str(files["run"])


def test_a_quickstart_with_fewer_steps_shortens_its_intervals_to_fit():
    spec = quickstart_spec(Path.cwd(), max_steps=20, chat=True, chat_steps=5)
    training = spec.options.training
    assert training["max_steps"] == 20 and training["eval_interval"] == 20 and training["warmup_steps"] == 2
    assert spec.options.chat and spec.options.chat_training["max_steps"] == 5
    with pytest.raises(SpecError, match=r"quickstart spec: unknown key 'options\.steps'"):
        quickstart_spec(Path.cwd(), {"steps": 3})


def test_a_studys_trials_evaluate_four_times_and_checkpoint_once_unless_told_otherwise():
    assert trial_training(200)["eval_interval"] == 50 and trial_training(200)["checkpoint_interval"] == 200
    assert trial_training(200, {"batch_size": 4})["batch_size"] == 4
    with pytest.raises(SpecError, match="unknown config key 'batchsize'"):
        trial_training(200, {"batchsize": 4})
