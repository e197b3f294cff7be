"""Training throughput: tokens/s, achieved GFLOP/s and MFU of real AdamW steps through the Trainer's own code.

Each shape trains on random tokens written as a prepared dataset, so the step is exactly ``Trainer.train_step``
(forward, loss, backward, grad clipping, AdamW, scheduler). Warmup steps are excluded; the step time is the
median of the measured steps. MFU = achieved GFLOP/s ÷ the matmul peak measured in the same process.
Run ``python -m benchmarks.train_throughput``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.hardware import BackgroundLoad, load_note, machine_description, measure_peaks, use_all_threads
from benchmarks.report import format_table, write_results
from benchmarks.shapes import BATCH_SIZE, SEQ_LEN, benchmark_shapes
from engine.data import BinaryDatasetWriter, DatasetMeta, SplitCounts, token_dtype
from engine.model import ModelConfig
from engine.training.config import TrainConfig
from engine.training.trainer import Trainer

MFU_TARGET = 0.60  # for the reference shape


def write_random_dataset(directory: Path, vocab_size: int, tokens: int, seed: int = 0) -> Path:
    """A prepared dataset of uniformly random ids (train and a small val split)."""
    rng = np.random.default_rng(seed)
    counts = {}
    for split, size in (("train", tokens), ("val", max(tokens // 100, 4096))):
        with BinaryDatasetWriter(directory / split, vocab_size) as writer:
            writer.add_document(rng.integers(0, vocab_size, size=size - 1))
        counts[split] = SplitCounts(documents=1, tokens=size)
    DatasetMeta(
        tokenizer="random", tokenizer_sha256="", vocab_size=vocab_size, dtype=token_dtype(vocab_size).name,
        train=counts["train"], val=counts["val"],
    ).save(directory)  # fmt: skip
    return directory


def measure_training(
    config: ModelConfig, *, batch_size: int, seq_len: int, steps: int, warmup: int
) -> dict[str, Any]:
    """Time ``steps`` training steps after ``warmup`` untimed ones; returns step times and derived rates."""
    with tempfile.TemporaryDirectory(prefix="llmodel-bench-") as tmp:
        data_dir = write_random_dataset(Path(tmp) / "data", config.vocab_size, tokens=1 << 20)
        train_config = TrainConfig(
            batch_size=batch_size, seq_len=seq_len, max_steps=warmup + steps, warmup_steps=0,
            device="cpu", precision="fp32",
        )  # fmt: skip
        trainer = Trainer(config, train_config, data_dir, Path(tmp) / "run")
        try:
            trainer.set_up()
            times = []
            for step in range(warmup + steps):
                started = time.perf_counter()
                trainer.train_step(step)
                if step >= warmup:
                    times.append(time.perf_counter() - started)
        finally:
            trainer.close()
    step_time = statistics.median(times)
    tokens_per_step = batch_size * seq_len
    tokens_per_s = tokens_per_step / step_time
    flops_per_token = config.flops_per_token(seq_len)
    return {
        "config": config.to_dict(),
        "batch_size": batch_size,
        "seq_len": seq_len,
        "warmup_steps": warmup,
        "steps": steps,
        "parameters": config.num_parameters(),
        "flops_per_token": flops_per_token,
        "step_times_s": [round(t, 4) for t in times],
        "median_step_s": step_time,
        "tokens_per_s": tokens_per_s,
        "achieved_gflops": tokens_per_s * flops_per_token / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per shape")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    parser.add_argument(
        "--quick", action="store_true", help="2 short steps at seq 32, to check the script runs"
    )
    args = parser.parse_args()
    use_all_threads()
    machine = machine_description()
    seq_len, steps, warmup = (32, 2, 1) if args.quick else (SEQ_LEN, args.steps, args.warmup)
    shapes: dict[str, Any] = {}
    with BackgroundLoad() as load:
        peaks = measure_peaks(quick=args.quick)
        for name, config in benchmark_shapes().items():
            result = measure_training(
                config, batch_size=BATCH_SIZE, seq_len=seq_len, steps=steps, warmup=warmup
            )
            result["mfu"] = result["achieved_gflops"] / peaks["matmul_peak_gflops"]
            shapes[name] = result
    print(
        f"{machine['cpu']}, {machine['torch_threads']} threads, torch {machine['torch']}, {machine['date']}"
    )
    print(
        f"fp32 matmul peak {peaks['matmul_peak_gflops']:.1f} GFLOP/s; AdamW steps, batch {BATCH_SIZE} x seq {seq_len}"
    )
    rows = [
        [
            name,
            r["parameters"],
            r["flops_per_token"] / 1e6,
            r["median_step_s"] * 1e3,
            r["tokens_per_s"],
            r["achieved_gflops"],
            f"{r['mfu']:.1%}",
        ]
        for name, r in shapes.items()
    ]
    print(format_table(["shape", "params", "MFLOP/token", "step ms", "tokens/s", "GFLOP/s", "MFU"], rows))
    met = shapes["reference"]["mfu"] >= MFU_TARGET
    print(f"target: reference MFU ≥ {MFU_TARGET:.0%} — {'met' if met else 'missed'}")
    print(load_note(load.share))
    if not args.quick:
        figures = {
            **peaks,
            "background_cpu_share": load.share,
            "mfu_target": MFU_TARGET,
            "target_met": met,
            "shapes": shapes,
        }
        print(f"wrote {write_results('train_throughput', machine, figures)}")


if __name__ == "__main__":
    main()
