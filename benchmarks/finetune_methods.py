"""Fine-tuning methods side by side on the reference shape: full fine-tuning, LoRA and QLoRA.

For each method, in its own process (so peak memory is its own): the median step time of real Trainer steps
on packed SFT batches from the embedded instruction set, and the process's peak resident memory. Then the
base weights' memory in fp32 and in NF4, and the loss curves of LoRA and QLoRA trained on the same batches from
the same start. Run ``python -m benchmarks.finetune_methods``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.hardware import BackgroundLoad, load_note, machine_description, use_all_threads
from benchmarks.report import format_table, write_results
from benchmarks.shapes import benchmark_shapes
from engine.adapters.lora import projections
from engine.adapters.nf4 import to_nf4, weight_bytes
from engine.data.stdlib_corpus import build_stdlib_instructions
from engine.data.tokenizer_training import train_tokenizer
from engine.finetune.batches import SFTBatches
from engine.finetune.config import FinetuneSettings
from engine.finetune.setup import finetune_setup
from engine.finetune.sft_data import load_sft_data
from engine.model import ModelConfig, Transformer
from engine.runs import checkpoint as ckpt
from engine.tokenizer import Tokenizer
from engine.training.config import TrainConfig
from engine.training.trainer import Trainer

METHODS = ("full", "lora", "qlora")
BATCH, SEQ = 8, 256
MEMORY_TARGET = 3.5  # base weights at least this many times smaller in NF4 than in fp32


def prepare(workdir: Path, vocab: int) -> tuple[Path, Path, Path]:
    """The instruction set, a tokenizer trained on it, and a base checkpoint of the reference shape."""
    info = build_stdlib_instructions(workdir / "instructions")
    tokenizer_dir = workdir / "tokenizer"
    train_tokenizer([info.train_path], tokenizer_dir, vocab)
    config = reference(Tokenizer.load(tokenizer_dir).vocab_size)
    torch.manual_seed(0)
    base = ckpt.save_checkpoint(
        workdir / "base" / "checkpoints", step=0, model=Transformer(config), model_config=config,
        meta={"tokenizer": str(tokenizer_dir)},
    )  # fmt: skip
    return info.train_path, tokenizer_dir, base.path


def reference(vocab: int) -> ModelConfig:
    return ModelConfig.from_dict({**benchmark_shapes()["reference"].to_dict(), "vocab_size": vocab})


def run_method(
    method: str, data: Path, tokenizer_dir: Path, base_path: Path, steps: int, run_dir: Path
) -> dict[str, Any]:
    """Train ``steps`` steps with one method in this process; step times, losses and peak memory."""
    base = ckpt.resolve_checkpoint(base_path)
    config = base.model_config
    settings = FinetuneSettings(method=method, lora_rank=16, lora_alpha=16, lora_dropout=0.0)
    train = TrainConfig(
        batch_size=BATCH, seq_len=SEQ, max_steps=steps, warmup_steps=2, learning_rate=2e-4 if method != "full" else 5e-5,
        eval_interval=10**6, sample_interval=10**6, checkpoint_interval=10**6, attention_interval=10**6,
        device="cpu", precision="fp32", seed=0,
    )  # fmt: skip
    tokenizer = Tokenizer.load(tokenizer_dir)
    sft = load_sft_data([data], tokenizer, config, seq_len=SEQ)
    batches = SFTBatches(sft.train, sft.val[:8], seq_len=SEQ, cfg=train, pad_id=0, packing=True)
    trainer = Trainer(config, train, batches, run_dir, setup=finetune_setup(settings, base), kind="finetune")
    try:
        trainer.set_up()
        times, losses = [], []
        for step in range(steps):
            started = time.perf_counter()
            loss, _ = trainer.train_step(step)
            times.append(time.perf_counter() - started)
            losses.append(loss)
    finally:
        trainer.close()
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return {
        "method": method,
        "trainable_parameters": trainable,
        "parameters": config.num_parameters(),
        "median_step_s": statistics.median(times[2:] or times),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "step_times_s": [round(t, 4) for t in times],
        "losses": losses,
    }


def base_memory(config: ModelConfig) -> dict[str, int]:
    """Bytes of the base weights in fp32 and with the block projections in NF4 (as QLoRA keeps them)."""
    model = Transformer(config)
    blocks_fp32 = sum(linear.weight.numel() * 4 for *_, linear in projections(model))
    blocks_nf4 = sum(weight_bytes(to_nf4(linear.weight.data)) for *_, linear in projections(model))
    everything = sum(p.numel() * 4 for p in model.parameters())
    return {
        "projections_fp32": blocks_fp32,
        "projections_nf4": blocks_nf4,
        "model_fp32": everything,
        "model_qlora": everything - blocks_fp32 + blocks_nf4,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per method")
    parser.add_argument(
        "--quick", action="store_true", help="4 steps and a small vocabulary, nothing written"
    )
    parser.add_argument("--worker", nargs=6, metavar=("METHOD", "DATA", "TOKENIZER", "BASE", "STEPS", "RUN"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    use_all_threads()
    if args.worker:
        method, data, tokenizer, base, steps, run = args.worker
        print(json.dumps(run_method(method, Path(data), Path(tokenizer), Path(base), int(steps), Path(run))))
        return
    machine = machine_description()
    steps = 4 if args.quick else args.steps
    with tempfile.TemporaryDirectory(prefix="llmodel-ft-bench-") as tmp, BackgroundLoad() as load:
        work = Path(tmp)
        data, tokenizer_dir, base_path = prepare(work, 1024 if args.quick else 8192)
        results = {}
        for method in METHODS:
            command = [sys.executable, "-m", "benchmarks.finetune_methods", "--worker", method, str(data),
                       str(tokenizer_dir), str(base_path), str(steps), str(work / method)]  # fmt: skip
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[method] = json.loads(output.strip().splitlines()[-1])
        memory = base_memory(ckpt.resolve_checkpoint(base_path).model_config)
    lora, qlora = results["lora"]["losses"], results["qlora"]["losses"]
    gaps = [abs(a - b) for a, b in zip(lora, qlora, strict=True)]
    ratio = memory["projections_fp32"] / memory["projections_nf4"]
    print(
        f"{machine['cpu']}, {machine['torch_threads']} threads, torch {machine['torch']}, {machine['date']}"
    )
    print(f"reference shape (d 384, 6 layers), packed SFT batches {BATCH} x {SEQ}, {steps} steps each, fp32")
    rows = [
        [m, r["trainable_parameters"], r["median_step_s"] * 1e3, r["peak_rss_bytes"] / 2**20, r["losses"][-1]]
        for m, r in results.items()
    ]
    print(format_table(["method", "trainable", "step ms", "peak RSS MiB", "last loss"], rows))
    print(
        f"base projections: fp32 {memory['projections_fp32'] / 2**20:.1f} MiB, NF4 {memory['projections_nf4'] / 2**20:.1f} "
        f"MiB ({ratio:.2f}x smaller; target ≥ {MEMORY_TARGET}x — {'met' if ratio >= MEMORY_TARGET else 'missed'}); "
        f"whole model {memory['model_fp32'] / 2**20:.1f} → {memory['model_qlora'] / 2**20:.1f} MiB"
    )
    print(f"LoRA vs QLoRA losses: mean |gap| {statistics.mean(gaps):.4f}, max {max(gaps):.4f}, "
          f"last {lora[-1]:.4f} vs {qlora[-1]:.4f}")  # fmt: skip
    print(load_note(load.share))
    if not args.quick:
        figures = {
            "background_cpu_share": load.share, "batch_size": BATCH, "seq_len": SEQ, "steps": steps,
            "methods": results, "base_memory": memory, "nf4_ratio": ratio, "nf4_target_met": ratio >= MEMORY_TARGET,
            "lora_qlora_mean_gap": statistics.mean(gaps), "lora_qlora_max_gap": max(gaps),
        }  # fmt: skip
        print(f"wrote {write_results('finetune_methods', machine, figures)}")


if __name__ == "__main__":
    main()
