"""Fine-tuning from the command line as the README shows it: full, LoRA and QLoRA runs as engine jobs, the
adapters they leave, merging one, generating and serving with one, and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_runner import run_cli
from tests.test_cli_errors import assert_one_line_error

TRAIN = (
    "--max-steps",
    "6",
    "--batch-size",
    "4",
    "--seq-len",
    "32",
    "--eval-interval",
    "3",
    "--checkpoint-interval",
    "3",
)


@pytest.fixture(scope="module")
def sums(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sft") / "sums.jsonl"
    records = [
        {"instruction": f"Add {a} and {b}.", "output": str(a + b)} for a in range(10) for b in range(8)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def adapters(capsys) -> list[dict]:
    result = run_cli(capsys, "adapters", "list", "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.mark.slow
def test_lora_finetune_leaves_an_adapter_that_generate_merge_and_the_catalog_know(
    capsys, tmp_path, served_run_dir, sums
):
    result = run_cli(
        capsys,
        "lora-finetune",
        "--model-path",
        str(served_run_dir),
        "--data-path",
        str(sums),
        *TRAIN,
        "--lora-rank",
        "4",
        "--target-modules",
        "all-linear",
        "--adapter-name",
        "sums",
    )
    assert result.code == 0, result.err
    assert "adapter sums saved to" in result.err and "trainable" not in result.err.split("adapter sums")[1]
    (row,) = adapters(capsys)
    assert row["name"] == "sums" and row["method"] == "lora" and row["rank"] == 4 and len(row["targets"]) == 7
    assert row["base_checkpoint"].startswith(str(served_run_dir))
    runs = json.loads(run_cli(capsys, "runs", "list", "--json").out)
    assert [r["kind"] for r in runs] == ["finetune"] and runs[0]["status"] == "completed"

    prompt = ("--prompt", "<|user|>\nAdd 3 and 4.\n<|assistant|>\n", "--max-tokens", "6", "--greedy")
    with_adapter = run_cli(capsys, "generate", "--adapter", "sums", *prompt)
    assert with_adapter.code == 0, with_adapter.err
    assert "+ adapter sums" in with_adapter.err
    merged = tmp_path / "merged"
    assert run_cli(capsys, "lora", "merge", "--adapter", "sums", "--output", str(merged)).code == 0
    from_merged = run_cli(capsys, "generate", "--model-path", str(merged), *prompt)
    assert from_merged.code == 0, from_merged.err
    assert from_merged.out == with_adapter.out, "the merged checkpoint answers like base + adapter"
    run_dir = Path(runs[0]["run_dir"])
    from_run = run_cli(capsys, "generate", "--model-path", str(run_dir), *prompt)
    assert from_run.out == with_adapter.out, "a LoRA run's own folder loads as base + its adapter"

    assert run_cli(capsys, "adapters", "remove", "sums").code == 0
    assert adapters(capsys) == [] and not Path(row["path"]).exists()


@pytest.mark.slow
def test_full_finetune_and_qlora_run_as_jobs(capsys, served_run_dir, sums):
    full = run_cli(capsys, "finetune", "--model-path", str(served_run_dir), "--data-path", str(sums), *TRAIN)
    assert full.code == 0, full.err
    assert "fine-tuned 6 steps" in full.err and "checkpoint" in full.err
    qlora = run_cli(
        capsys,
        "lora-finetune",
        "--model-path",
        str(served_run_dir),
        "--data-path",
        str(sums),
        *TRAIN,
        "--qlora",
        "--lora-rank",
        "4",
        "--adapter-name",
        "sums-q",
    )
    assert qlora.code == 0, qlora.err
    assert [a["method"] for a in adapters(capsys)] == ["qlora"]


@pytest.mark.parametrize(
    ("flags", "fragments"),
    [
        (("--lora-rank", "0"), ("LoRA rank must be a positive integer, got 0",)),
        (("--target-modules", "qkv"), ("unknown target module 'qkv'", "q_proj, k_proj")),
        (("--quantize", "int3"), ("unknown --quantize 'int3'",)),
    ],
)
def test_bad_lora_settings_are_one_line_errors_before_any_job_starts(
    capsys, served_run_dir, sums, flags, fragments
):
    result = run_cli(
        capsys, "lora-finetune", "--model-path", str(served_run_dir), "--data-path", str(sums), *flags
    )
    assert_one_line_error(result, *fragments)


@pytest.mark.slow
def test_data_with_no_assistant_turn_fails_the_job_in_one_line(capsys, tmp_path, served_run_dir):
    data = tmp_path / "users.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    result = run_cli(
        capsys, "finetune", "--model-path", str(served_run_dir), "--data-path", str(data), *TRAIN
    )
    assert_one_line_error(result, "has an assistant turn to train on", "--train-on-inputs")


@pytest.mark.slow
def test_an_adapter_for_another_base_is_refused_naming_both(capsys, tmp_path, served_run_dir, sums):
    trained = run_cli(
        capsys,
        "lora-finetune",
        "--model-path",
        str(served_run_dir),
        "--data-path",
        str(sums),
        *TRAIN,
        "--lora-rank",
        "4",
        "--adapter-name",
        "mine",
    )
    assert trained.code == 0, trained.err
    other = run_cli(capsys, "finetune", "--model-path", str(served_run_dir), "--data-path", str(sums), *TRAIN)
    assert other.code == 0, other.err
    newest = json.loads(run_cli(capsys, "runs", "list", "--json").out)[0]  # the full fine-tune: another base
    assert newest["kind"] == "finetune"
    result = run_cli(
        capsys, "generate", "--model-path", newest["run_dir"], "--adapter", "mine", "--prompt", "x"
    )
    assert_one_line_error(result, "adapter mine was trained on", "not on")
