"""Choosing the quickstart's model shape: the best validation loss in a fixed training-time budget.

Each candidate is trained on the quickstart's own corpus, tokenizer (4096 tokens) and dataset for as many steps
as its measured speed allows in the budget (6 minutes by default), with the quickstart's schedule; the final
validation loss is printed and written to results/quickstart_sweep.json.

    python -m benchmarks.quickstart_sweep [--budget-seconds 360] [--shapes d128L4 d192L4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.hardware import machine_description, use_all_threads
from benchmarks.report import format_table, write_results
from engine.model import ModelConfig, Transformer
from engine.pipelines.quickstart import run_quickstart
from engine.specs.quickstart import QUICKSTART_TRAINING, QuickstartOptions
from engine.training.config import TrainConfig
from engine.training.trainer import Trainer

CANDIDATES = {
    "d128L4": {"d_model": 128, "n_layers": 4, "n_heads": 4, "d_ff": 384},
    "d192L4": {"d_model": 192, "n_layers": 4, "n_heads": 6, "d_ff": 512},
    "d256L4": {"d_model": 256, "n_layers": 4, "n_heads": 4, "d_ff": 704},
}


def tokens_per_second(shape: dict, vocab: int, batch: int, seq: int) -> float:
    """Measured training speed of a shape (median of 4 steps after 2 warmup steps)."""
    config = ModelConfig.from_dict({**shape, "vocab_size": vocab, "max_len": seq})
    model = Transformer(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, vocab, (batch, seq))
    times = []
    for i in range(6):
        start = time.perf_counter()
        model(x, labels=x).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return batch * seq / sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-seconds", type=float, default=360.0)
    parser.add_argument("--shapes", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    args = parser.parse_args()
    use_all_threads()
    batch, seq = QUICKSTART_TRAINING["batch_size"], QUICKSTART_TRAINING["seq_len"]
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        # Corpus, tokenizer and dataset exactly as the quickstart makes them (one training step, then reused).
        prepared = run_quickstart(
            workspace, QuickstartOptions(training={**QUICKSTART_TRAINING, "max_steps": 1})
        )
        rows, figures = [], {}
        for name in args.shapes:
            shape = CANDIDATES[name]
            speed = tokens_per_second(shape, 4096, batch, seq)
            steps = int(args.budget_seconds * speed / (batch * seq))
            config = ModelConfig.from_dict({**shape, "vocab_size": 4096, "max_len": seq})
            settings = TrainConfig.from_dict(
                {**QUICKSTART_TRAINING, "max_steps": steps, "eval_interval": steps}
            )
            started = time.perf_counter()
            result = Trainer(config, settings, prepared.dataset_dir, workspace / "runs" / name).run()
            seconds = time.perf_counter() - started
            val = result.final_metrics["val_loss"]
            rows.append([name, config.num_parameters(), round(speed), steps, round(seconds), val])
            figures[name] = {"parameters": config.num_parameters(), "tokens_per_s": speed, "steps": steps,
                             "seconds": seconds, "val_loss": val}  # fmt: skip
        print(format_table(["shape", "params", "tok/s", "steps", "seconds", "val loss"], rows))
        print(f"unigram entropy of the corpus: {prepared.unigram_entropy:.3f} nats/token")
        figures["unigram_entropy"] = prepared.unigram_entropy
    print(f"wrote {write_results('quickstart_sweep', machine_description(), figures)}")


if __name__ == "__main__":
    main()
