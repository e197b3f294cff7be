"""Efficiency of a model on this machine: generation speed and latency, peak memory, energy where a counter
exists, and training throughput for the model's shape — the figures ``llmodel benchmark`` records."""

from __future__ import annotations

import itertools
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from engine.data import BinaryDatasetWriter, DatasetMeta, SplitCounts, token_dtype
from engine.generation import SamplingParams, generate_ids
from engine.runs.loading import load_for_inference
from engine.training.config import TrainConfig
from engine.training.trainer import Trainer

RAPL = Path("/sys/class/powercap/intel-rapl:0/energy_uj")  # package energy in microjoules, where readable
PROMPT_TOKENS = 16


def energy_counter() -> Callable[[], float] | None:
    """A reader of the CPU package's cumulative energy in joules, or None where the machine exposes none."""
    try:
        float(RAPL.read_text())
    except (OSError, ValueError):
        return None
    return lambda: float(RAPL.read_text()) / 1e6


def peak_memory_mb(device: torch.device) -> float:
    """This process's peak: the CUDA allocator's on a GPU, resident set size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def _prompts(vocab: int, batch: int, seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(5, vocab, (batch, PROMPT_TOKENS), generator=generator).tolist()


def generation_figures(model: Any, new_tokens: int, repeats: int = 3) -> dict[str, float]:
    """Greedy generation of ``new_tokens`` (EOS ignored) at batch 1 and 8: tokens/s, time to first token and
    per-token latency (p50/p99 over every token of every repeat at batch 1)."""
    params = SamplingParams(max_new_tokens=new_tokens, do_sample=False, stop_at_eos=False)
    vocab = model.config.vocab_size
    first_token, gaps, rates = [], [], []
    for repeat in range(repeats):
        stamps: list[float] = []
        started = time.perf_counter()
        generate_ids(model, _prompts(vocab, 1, repeat), params, on_token=_stamper(stamps))
        elapsed = time.perf_counter() - started
        first_token.append(stamps[0] - started)
        gaps += [b - a for a, b in itertools.pairwise(stamps)]
        rates.append(new_tokens / elapsed)
    started = time.perf_counter()
    generate_ids(model, _prompts(vocab, 8), params)
    batch8 = 8 * new_tokens / (time.perf_counter() - started)
    gaps.sort()
    return {
        "tokens_per_s_batch1": statistics.median(rates),
        "tokens_per_s_batch8": batch8,
        "ttft_ms_p50": statistics.median(first_token) * 1e3,
        "token_latency_ms_p50": statistics.median(gaps) * 1e3,
        "token_latency_ms_p99": gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))] * 1e3,
    }


def _stamper(stamps: list[float]) -> Callable[[int, int], None]:
    return lambda row, token: stamps.append(time.perf_counter())


def training_figures(config: Any, device: str, steps: int = 3) -> dict[str, float]:
    """Tokens/s of real training steps (forward, backward, AdamW) for this shape on random tokens."""
    seq_len = min(256, config.max_len)
    with tempfile.TemporaryDirectory(prefix="llmodel-benchmark-") as tmp:
        data = Path(tmp) / "data"
        counts = {}
        for split, size in (("train", 1 << 16), ("val", 4096)):
            with BinaryDatasetWriter(data / split, config.vocab_size) as writer:
                writer.add_document(torch.randint(0, config.vocab_size, (size - 1,)).numpy())
            counts[split] = SplitCounts(1, size)
        DatasetMeta(
            "random",
            "",
            config.vocab_size,
            token_dtype(config.vocab_size).name,
            counts["train"],
            counts["val"],
        ).save(data)
        settings = TrainConfig(
            batch_size=4, seq_len=seq_len, max_steps=steps + 1, warmup_steps=0, device=device
        )
        trainer = Trainer(config, settings, data, Path(tmp) / "run")
        try:
            trainer.set_up()
            trainer.train_step(0)  # warm-up
            started = time.perf_counter()
            tokens = sum(trainer.train_step(step)[1] for step in range(1, steps + 1))
            elapsed = time.perf_counter() - started
        finally:
            trainer.close()
    return {"train_tokens_per_s": tokens / elapsed, "train_step_ms": elapsed / steps * 1e3}


def benchmark_model(
    model_path: str | Path,
    *,
    adapter: str | Path | None = None,
    device: str = "auto",
    new_tokens: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Every efficiency figure, as the ``result`` event an evaluation writes (task ``efficiency``)."""
    report = progress or (lambda done, total: None)
    loaded = load_for_inference(model_path, adapter=adapter, device=device)
    read_energy = energy_counter()
    energy_before = read_energy() if read_energy else None
    report(0, 3)
    figures = generation_figures(loaded.model, new_tokens)
    report(1, 3)
    tokens_generated = new_tokens * (3 + 8)
    notes = {}
    if read_energy is not None and energy_before is not None:
        figures["energy_j_per_token"] = (read_energy() - energy_before) / tokens_generated
    else:
        notes["energy"] = "unavailable: this machine exposes no readable energy counter (RAPL)"
    figures |= training_figures(loaded.model.config, str(loaded.device))
    report(2, 3)
    figures["peak_memory_mb"] = peak_memory_mb(loaded.device)
    report(3, 3)
    return {
        "task": "efficiency",
        "kind": "benchmark",
        "model": str(model_path),
        "checkpoint": str(loaded.checkpoint.path),
        "step": loaded.checkpoint.step,
        "adapter": loaded.adapter,
        "scores": [
            {"metric": name, "value": value, "stderr": None, "n": 1} for name, value in figures.items()
        ],
        "settings": {
            "new_tokens": new_tokens,
            "prompt_tokens": PROMPT_TOKENS,
            "device": str(loaded.device),
            "torch_threads": torch.get_num_threads(),
            **notes,
        },
        "chance": "",
        "baseline": {},
    }
