"""A full disk, for real: a small tmpfs filled while a checkpoint, a catalog write, a dataset or an adapter is
written. Each says in one line which path, how much room it needs and what is still good; no temporary stays
behind; the work goes on once space is freed. Needs root to mount; skipped with a message elsewhere."""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from engine.adapters.files import load_adapter, save_adapter
from engine.adapters.lora import apply_lora
from engine.adapters.settings import LoraSettings
from engine.catalog import Catalog
from engine.daemon import job_runner
from engine.daemon.jobs import read_job, write_job
from engine.data.prepare import prepare_dataset
from engine.errors import DiskFullError
from engine.fileio import free_bytes
from engine.model import ModelConfig, Transformer
from engine.runs import checkpoint as ckpt
from engine.runs.events import Event, read_events
from engine.runs.merge import merge_to_checkpoint
from engine.specs import PretrainSpec
from engine.training.config import TrainConfig
from engine.training.trainer import Trainer

pytestmark = pytest.mark.slow  # each test trains a model or tokenises a corpus


@contextmanager
def small_disk(path: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of ``size_kb`` mounted at ``path`` for the block."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'mount refused'}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` but ``leave`` bytes with one file; delete it to free the space."""
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        remaining = free_bytes(disk) - leave
        while remaining > 0:
            try:
                fh.write(b"\0" * min(remaining, 1 << 16))
                fh.flush()
            except OSError:
                break
            remaining -= 1 << 16
    return filler


def temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob(".*") if "tmp" in p.name or "deleting" in p.name]


def settings(**changes: object) -> TrainConfig:
    base = TrainConfig(
        batch_size=2,
        seq_len=16,
        max_steps=8,
        warmup_steps=2,
        learning_rate=3e-3,
        eval_interval=4,
        eval_batches=1,
        sample_interval=10**6,
        checkpoint_interval=2,
        keep_last=2,
        attention_interval=10**6,
        log_interval=10**6,
        device="cpu",
        num_threads=1,
    )
    return dataclasses.replace(base, **changes)


def steps(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "step"}


def test_a_full_disk_during_a_checkpoint_names_the_last_good_one_and_the_run_resumes(
    nano_config: ModelConfig, dataset_dir: Path, tmp_path: Path
) -> None:
    straight = tmp_path / "straight"
    Trainer(nano_config, settings(), dataset_dir, straight).run()
    with small_disk(tmp_path / "disk", 8192) as disk:
        run_dir = disk / "runs" / "r1"
        filler: list[Path] = []

        def fill_at_step_five(event: Event) -> None:
            if event["type"] == "step" and event["step"] == 5:
                filler.append(fill(disk, leave=16_384))

        trainer = Trainer(nano_config, settings(), dataset_dir, run_dir, on_event=fill_at_step_five)
        with pytest.raises(DiskFullError) as failed:
            trainer.run()
        message = str(failed.value)
        checkpoints = run_dir / "checkpoints"
        assert "\n" not in message
        assert f"writing {checkpoints / 'step-00000006'}: it needs about " in message
        assert f"the last good checkpoint is {checkpoints / 'step-00000004'}" in message
        assert message.endswith("free space, then `llmodel runs resume r1`")
        assert temporaries(run_dir) == [], "the half-written checkpoint is gone"
        assert ckpt.latest_checkpoint(checkpoints).step == 4

        filler[0].unlink()
        resumed = Trainer(nano_config, settings(), dataset_dir, run_dir, resume_from=run_dir).run()
        assert resumed.status == "completed" and resumed.step == 8
        assert steps(run_dir) == steps(straight), "the resumed run goes on along the same curve"


def test_a_job_that_fills_the_disk_ends_failed_with_one_line_and_resumes_once_space_is_freed(
    nano_config: ModelConfig, dataset_dir: Path, tmp_path: Path
) -> None:
    each = ckpt.estimate_checkpoint_bytes(Transformer(nano_config))
    with small_disk(tmp_path / "disk", 4096) as disk:
        run_dir = disk / "runs" / "r2"
        spec = PretrainSpec(
            model_config=nano_config,
            train_config=settings(),
            data_paths=[str(dataset_dir)],
            cache_root=str(disk / "datasets"),
        )
        write_job(run_dir, spec)
        filler = fill(disk, leave=each * 3 // 2)  # room for the checkpoint of step 2, not for the next one

        def job_runner() -> subprocess.CompletedProcess[str]:
            repository = str(Path(__file__).resolve().parents[1])
            command = [sys.executable, "-m", "engine.daemon.job_runner", str(run_dir)]
            env = {**os.environ, "PYTHONPATH": repository}
            return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

        failed = job_runner()
        assert failed.returncode == 1, failed.stderr
        assert "Traceback" not in failed.stderr, failed.stderr[-3000:]
        events = list(read_events(run_dir / "events.jsonl"))
        final = events[-1]
        assert final["type"] == "status" and final["status"] == "failed"
        checkpoints = run_dir / "checkpoints"
        assert "\n" not in final["error"]
        assert f"writing {checkpoints / 'step-00000004'}: it needs about " in final["error"]
        assert f"the last good checkpoint is {checkpoints / 'step-00000002'}" in final["error"]
        assert final["error"].endswith("`llmodel runs resume r2`")
        assert any(e["type"] == "log" and e["level"] == "warning" for e in events), "it was warned of"
        assert temporaries(run_dir) == []

        filler.unlink()
        job = read_job(run_dir)
        assert isinstance(job, PretrainSpec)
        write_job(run_dir, dataclasses.replace(job, resume_from=str(run_dir)))  # what `runs resume` does
        resumed = job_runner()
        assert resumed.returncode == 0, resumed.stderr
        assert list(read_events(run_dir / "events.jsonl"))[-1]["status"] == "completed"
        assert ckpt.latest_checkpoint(checkpoints).step == 8


def test_an_out_of_space_error_no_writer_wrapped_still_ends_the_job_with_one_line(
    nano_config: ModelConfig, dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    write_job(run_dir, PretrainSpec(nano_config, settings(), [str(dataset_dir)], str(tmp_path / "datasets")))

    def fills_the_disk(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "somewhere.bin"))

    monkeypatch.setattr(job_runner, "run_job", fills_the_disk)
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        assert job_runner.main([str(run_dir)]) == 1
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
    final = list(read_events(run_dir / "events.jsonl"))[-1]
    assert final["status"] == "failed"
    assert final["error"] == (
        f"no space left on the device: [Errno 28] No space left on device: '{tmp_path / 'somewhere.bin'}'; "
        "free space first"
    )


def test_a_full_disk_while_logging_events_stops_the_run_with_one_line_and_a_readable_log(
    nano_config: ModelConfig, dataset_dir: Path, tmp_path: Path
) -> None:
    quiet = settings(max_steps=400, checkpoint_interval=10**6, eval_interval=10**6)
    with small_disk(tmp_path / "disk", 8192) as disk:
        run_dir = disk / "runs" / "r3"
        filler: list[Path] = []

        def fill_at_step_three(event: Event) -> None:
            if event["type"] == "step" and event["step"] == 3:
                filler.append(fill(disk))

        with pytest.raises(DiskFullError) as failed:
            Trainer(nano_config, quiet, dataset_dir, run_dir, on_event=fill_at_step_three).run()
        message = str(failed.value)
        assert "\n" not in message
        assert f"writing {run_dir / 'events.jsonl'}: it needs about " in message
        assert f"no checkpoint in {run_dir / 'checkpoints'} is complete yet" in message
        assert message.endswith("free space, then `llmodel runs resume r3`")

        filler[0].unlink()
        again = Trainer(nano_config, settings(max_steps=2), dataset_dir, run_dir).run()
        assert again.status == "completed"
        lines = (run_dir / "events.jsonl").read_bytes().split(b"\n")
        assert lines[-1] == b"", "every line ends, the torn one too"
        assert list(read_events(run_dir / "events.jsonl"))[-1]["status"] == "completed"


def test_the_checkpoint_size_estimate_is_what_a_checkpoint_takes(
    nano_config: ModelConfig, dataset_dir: Path, tmp_path: Path
) -> None:
    model = Transformer(nano_config)
    parameters = sum(p.numel() for p in model.parameters())
    assert ckpt.estimate_checkpoint_bytes(model, with_state=False) >= 4 * parameters  # fp32 weights
    # AdamW adds two fp32 moments per trained weight: 12 bytes a parameter in all, give or take the buffers.
    assert ckpt.estimate_checkpoint_bytes(model) - ckpt.estimate_checkpoint_bytes(
        model, with_state=False
    ) == (8 * parameters)
    result = Trainer(nano_config, settings(max_steps=1), dataset_dir, tmp_path / "run").run()
    on_disk = sum(f.stat().st_size for f in result.last_checkpoint.iterdir())
    assert on_disk == pytest.approx(ckpt.estimate_checkpoint_bytes(model), rel=0.1)


def test_a_run_warns_before_it_starts_when_its_checkpoints_will_not_fit(
    nano_config: ModelConfig, dataset_dir: Path, tmp_path: Path
) -> None:
    each = ckpt.estimate_checkpoint_bytes(Transformer(nano_config))
    with small_disk(tmp_path / "disk", 2 * each // 1024) as disk:
        run_dir = disk / "run"
        Trainer(nano_config, settings(max_steps=1, keep_last=3), dataset_dir, run_dir).run()
        events = list(read_events(run_dir / "events.jsonl"))
    warning = next(e for e in events if e["type"] == "log" and e["level"] == "warning")
    assert (
        "its checkpoints need about" in warning["message"]
        and "(3 kept + 1 being written" in warning["message"]
    )
    first_step = next(i for i, e in enumerate(events) if e["type"] == "step")
    assert events.index(warning) < first_step, "the warning comes before training starts"

    roomy = tmp_path / "roomy"
    Trainer(nano_config, settings(max_steps=1), dataset_dir, roomy).run()
    assert not [e for e in read_events(roomy / "events.jsonl") if e.get("level") == "warning"]


def test_a_full_disk_during_a_catalog_write_rolls_it_back_and_the_catalog_stays_readable(
    tmp_path: Path,
) -> None:
    events = [{"type": "step", "step": i, "loss": 1 / i, "time": 1.0} for i in range(1, 400)]
    with small_disk(tmp_path / "disk", 4096) as disk:
        workspace = disk / "workspace"
        catalog = Catalog.open(workspace)
        catalog.create_run("kept", "pretrain", workspace / "runs" / "kept", {}, status="running")
        catalog.ingest_events("kept", events[:50], 50)
        filler = fill(disk)
        refused: dict[str, str] = {}  # run id → the one line its write raised
        for number in range(100):  # until DuckDB's write-ahead log needs a page it cannot get
            run_id = f"r{number}"
            try:
                catalog.create_run(run_id, "pretrain", workspace / "runs" / run_id, {"x": "y" * 4096})
            except DiskFullError as full:
                refused[run_id] = str(full)
                if "rolled back" in str(full):
                    break
        rolled_back = next(run_id for run_id, message in refused.items() if "rolled back" in message)
        message = refused[rolled_back]
        assert "\n" not in message
        assert message.startswith(f"no space left on the device writing {workspace / 'workspace.duckdb'}: ")
        assert message.endswith("this change was rolled back and the catalog holds every one before it")
        assert rolled_back not in {run["id"] for run in catalog.list_runs()}, "DuckDB rolled the commit back"
        for run_id, line in refused.items():  # the runs list beside the catalog was full first, if at all
            assert run_id == rolled_back or line.endswith("catches up at the next write")
        assert catalog.event_offset("kept") == 50, "what was committed before is still there"

        filler.unlink()
        catalog.ingest_events("kept", events[50:], len(events))  # the same connection goes on writing
        catalog.close()
        assert temporaries(workspace) == []
        with Catalog.open(workspace, read_only=True) as reader:
            assert reader.event_offset("kept") == len(events)
            assert len(reader.metrics("kept", names=["loss"])["loss"]) == len(events)
            assert rolled_back not in {run["id"] for run in reader.list_runs()}


def test_a_full_disk_while_preparing_a_dataset_leaves_nothing_half_written(
    corpus_file: Path, tokenizer_dir: Path, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", 1024) as disk:
        output = disk / "datasets" / "stdlib"
        filler = fill(disk, leave=32_768)
        with pytest.raises(DiskFullError) as failed:
            prepare_dataset([corpus_file], tokenizer_dir, output, val_fraction=0.05, num_workers=0)
        message = str(failed.value)
        assert "\n" not in message
        assert f"writing {output}: it needs about " in message
        assert message.endswith("nothing was written there; free space and prepare it again")
        assert not output.exists() and temporaries(disk) == []

        filler.unlink()
        meta = prepare_dataset([corpus_file], tokenizer_dir, output, val_fraction=0.05, num_workers=0)
        assert meta.train.tokens > 0 and temporaries(disk) == []


def test_a_full_disk_while_saving_an_adapter_keeps_the_old_one_and_saves_once_space_is_freed(
    nano_config: ModelConfig, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = Transformer(nano_config)
    base = ckpt.save_checkpoint(
        tmp_path / "base" / "checkpoints", step=1, model=model, model_config=nano_config
    )
    apply_lora(model, LoraSettings(rank=8))
    with small_disk(tmp_path / "disk", 256) as disk:
        directory = disk / "adapters" / "port"
        save_adapter(model, directory, LoraSettings(rank=8), base)
        first = (directory / "adapter_model.safetensors").read_bytes()
        filler = fill(disk, leave=4096)
        with pytest.raises(DiskFullError) as failed:
            save_adapter(model, directory, LoraSettings(rank=8), base, note="second")
        message = str(failed.value)
        assert "\n" not in message
        assert f"writing {directory}: it needs about " in message and message.endswith(
            f"{directory} is unchanged"
        )
        assert temporaries(disk) == [] and (directory / "adapter_model.safetensors").read_bytes() == first

        filler.unlink()
        assert load_adapter(save_adapter(model, directory, LoraSettings(rank=8), base, note="second").path)
        assert load_adapter(directory).meta["note"] == "second"


def test_a_full_disk_while_merging_an_adapter_names_the_base_and_the_adapter_as_unchanged(
    nano_config: ModelConfig, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = Transformer(nano_config)
    base = ckpt.save_checkpoint(
        tmp_path / "base" / "checkpoints", step=1, model=model, model_config=nano_config
    )
    apply_lora(model, LoraSettings(rank=8))
    adapter = save_adapter(model, tmp_path / "adapters" / "port", LoraSettings(rank=8), base)
    with small_disk(tmp_path / "disk", 128) as disk:
        with pytest.raises(DiskFullError) as failed:
            merge_to_checkpoint(adapter, disk / "merged", base)
        message = str(failed.value)
        assert (
            "\n" not in message and f"writing {disk / 'merged' / 'checkpoints' / 'step-00000001'}" in message
        )
        assert message.endswith(
            f"the base {base.path} and the adapter {adapter.path} are unchanged; free space and merge again"
        )
        assert temporaries(disk) == []
