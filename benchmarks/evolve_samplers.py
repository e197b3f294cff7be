"""Search strategies side by side: regularized evolution and NSGA-II against random search, at equal trial counts.

Each strategy runs the same study — the same space over training settings and architecture, nano-sized models,
short trials of real training on a slice of the embedded corpus — for ``--trials`` trials, over 3 seeds. Reported:
the best validation loss reached, and how many trials each took to reach a target (the median over seeds of random
search's best after half the trials; fixed before any comparison is made, the same for every strategy).
Run ``python -m benchmarks.evolve_samplers``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.hardware import machine_description
from benchmarks.report import format_table, write_results
from engine.data.prepare import prepare_dataset
from engine.data.stdlib_corpus import build_stdlib_corpus
from engine.data.tokenizer_training import train_tokenizer
from engine.evolve.study import StudySettings, create_study
from engine.evolve.trial import train_trial
from engine.evolve.worker import run_worker
from engine.tokenizer import Tokenizer

SAMPLERS = ("random", "evolution", "nsga2")
SEEDS = (0, 1, 2)
SPACE = {
    "learning_rate": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
    "warmup_steps": {"type": "int", "low": 0, "high": 20},
    "weight_decay": {"type": "float", "low": 0.0, "high": 0.2},
    "batch_size": {"type": "categorical", "choices": [4, 8, 16]},
    "d_model": {"type": "categorical", "choices": [32, 64, 96]},
    "n_layers": {"type": "int", "low": 1, "high": 3},
    "ffn_type": {"type": "categorical", "choices": ["swiglu", "gelu"]},
}
FIXED = {"n_heads": 4, "seq_len": 64}


def prepare(workdir: Path, corpus_bytes: int, vocab: int) -> tuple[Path, Path]:
    corpus = workdir / "corpus.jsonl"
    build_stdlib_corpus(corpus, max_bytes=corpus_bytes)
    tokenizer = workdir / "tokenizer"
    train_tokenizer([corpus], tokenizer, vocab)
    dataset = workdir / "dataset"
    prepare_dataset([corpus], tokenizer, dataset, val_fraction=0.05, num_workers=0)
    return dataset, tokenizer


def run_study(sampler: str, seed: int, trials: int, steps: int, dataset: Path, tokenizer: Path, workdir: Path,
              population: int) -> list[float]:  # fmt: skip
    """The validation loss of every complete trial, in trial order."""
    settings = StudySettings(
        space={"params": SPACE, "fixed": FIXED}, data_path=str(dataset), tokenizer_path=str(tokenizer),
        n_trials=trials, budget_steps=steps, sampler=sampler, population=population, seed=seed,
        base_model={"vocab_size": Tokenizer.load(tokenizer).vocab_size, "d_ff": 128, "max_len": 64},
        base_train={"eval_interval": steps, "eval_batches": 8, "log_interval": steps, "sample_interval": 10**6,
                    "attention_interval": 10**6, "checkpoint_interval": steps, "keep_last": 1, "device": "cpu",
                    "seed": 1337},
    )  # fmt: skip
    name = f"{sampler}-{seed}"
    study = create_study(name, settings, str(workdir / f"{name}.journal"), resume=False)
    torch.manual_seed(seed)

    def train(trial: Any, run_dir: Path, stop: Any) -> list[float]:
        return train_trial(settings, trial, run_dir, stop)

    run_worker(study, settings, workdir / name, train=train)
    complete = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.number)
    return [t.values[0] for t in complete]


def best_curve(losses: list[float]) -> list[float]:
    curve, best = [], float("inf")
    for value in losses:
        best = min(best, value)
        curve.append(best)
    return curve


def trials_to(target: float, curve: list[float]) -> int | None:
    return next((i + 1 for i, value in enumerate(curve) if value <= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 trials of 3 steps, one seed, nothing written")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--steps", type=int, default=60, help="training steps per trial")
    args = parser.parse_args()
    trials, steps, seeds = (4, 3, SEEDS[:1]) if args.quick else (args.trials, args.steps, SEEDS)
    population = 2 if args.quick else 8
    torch.set_num_threads(1)
    machine = machine_description()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        dataset, tokenizer = prepare(
            workdir, 200_000 if args.quick else 2_000_000, 512 if args.quick else 2048
        )
        curves: dict[str, dict[int, list[float]]] = {s: {} for s in SAMPLERS}
        for (
            seed
        ) in seeds:  # alternate the strategies within each seed, so drift in the machine hits all alike
            for sampler in SAMPLERS:
                losses = run_study(sampler, seed, trials, steps, dataset, tokenizer, workdir, population)
                curves[sampler][seed] = best_curve(losses)
                print(
                    f"{sampler:9s} seed {seed}: best {curves[sampler][seed][-1]:.4f} after {len(losses)} trials"
                )
    halfway = max(1, trials // 2)
    target = statistics.median(curves["random"][seed][halfway - 1] for seed in seeds)
    rows, figures = [], {"target_val_loss": target, "trials": trials, "steps_per_trial": steps, "seeds": list(seeds),
                         "space": SPACE, "fixed": FIXED, "population": population, "strategies": {}}  # fmt: skip
    for sampler in SAMPLERS:
        bests = [curves[sampler][seed][-1] for seed in seeds]
        reach = [trials_to(target, curves[sampler][seed]) for seed in seeds]
        figures["strategies"][sampler] = {"best_val_loss": bests, "trials_to_target": reach,
                                          "best_so_far": {str(s): curves[sampler][s] for s in seeds}}  # fmt: skip
        rows.append([sampler, statistics.mean(bests), min(bests), max(bests),
                     " ".join(str(r) if r else "-" for r in reach)])  # fmt: skip
    print(f"\ntarget: val loss {target:.4f} (median of random search's best after {halfway} trials)")
    print(format_table(["strategy", "mean best", "min", "max", "trials to target (per seed)"], rows))
    print(f"total {time.perf_counter() - started:.0f} s")
    if not args.quick:
        print(f"wrote {write_results('evolve_samplers', machine, figures)}")


if __name__ == "__main__":
    main()
