"""Generation throughput: greedy tokens/s with the KV cache at batch 1 and 8, against the memory-bandwidth bound.

Each decode step reads every weight it uses once, so at batch 1 the step rate is bounded by
read bandwidth ÷ weight bytes (all parameters incl. the output projection; the input embedding only when tied,
since its gather reads one row). The timed call is ``engine.generation.generate_ids`` (prefill included).
Each shape runs twice: with the weights as training leaves them (``nn.Linear``'s (out, in) layout, the general
forward pass every step) and after ``engine.model.decode_layout.prepare_for_decoding``, the layout every
inference entry point (``llmodel generate``, the model server) uses on CPU, where batch 1 takes
``engine.model.decode_step.DecodeStep``.

Other tenants of a shared machine move its read bandwidth by ±25% within minutes, so the bandwidth is measured
again right before every timed call and each call is compared with its own bound; the table gives the median
call. Run ``python -m benchmarks.generation_throughput``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from benchmarks.hardware import (
    BackgroundLoad,
    load_note,
    machine_description,
    measure_peaks,
    memory_bandwidth_gbs,
    use_all_threads,
)
from benchmarks.report import format_table, write_results
from benchmarks.shapes import benchmark_shapes
from engine.generation import SamplingParams, generate_ids
from engine.model import ModelConfig, Transformer
from engine.model.decode_layout import prepare_for_decoding

BATCH_SIZES = (1, 8)
PROMPT_TOKENS = 16
NEW_TOKENS = 128
BOUND_TARGET = 0.50  # batch 1, fraction of the bandwidth bound
LAYOUTS = ("training", "decode")  # as trained; after prepare_for_decoding


def weight_bytes_per_step(model: Transformer) -> int:
    """Bytes of weights one decode step reads: every parameter except the input-embedding gathers."""
    gathered = set()
    if not model.config.tie_word_embeddings:
        gathered.add(id(model.model.embed_tokens.weight))
    if hasattr(model.model, "embed_positions"):
        gathered.add(id(model.model.embed_positions.weight))
    return sum(p.numel() * p.element_size() for p in model.parameters() if id(p) not in gathered)


def measure_generation(
    model: Transformer, *, batch_size: int, prompt_tokens: int, new_tokens: int, repeats: int, quick: bool
) -> dict[str, Any]:
    """``repeats`` greedy ``generate_ids`` calls of ``new_tokens`` per row, each against the bandwidth just before it.

    Returns the median call: its time, tokens/s and fraction of the bound of that moment's bandwidth.
    """
    generator = torch.Generator().manual_seed(batch_size)
    prompts = torch.randint(
        3, model.config.vocab_size, (batch_size, prompt_tokens), generator=generator
    ).tolist()
    params = SamplingParams(max_new_tokens=new_tokens, do_sample=False)
    generate_ids(model, prompts, SamplingParams(max_new_tokens=8, do_sample=False))  # warm up
    weight_bytes = weight_bytes_per_step(model)
    calls = []
    for _ in range(repeats):
        bandwidth = memory_bandwidth_gbs(*((64 << 20, 2) if quick else (256 << 20, 3)))
        started = time.perf_counter()
        outputs = generate_ids(model, prompts, params)  # no eos id: every row runs to new_tokens
        seconds = time.perf_counter() - started
        assert all(len(row) == new_tokens for row in outputs)
        bound = bandwidth * 1e9 / weight_bytes  # decode steps/s, = tokens/s at batch 1
        calls.append(
            {
                "seconds": seconds,
                "bandwidth_gbs": bandwidth,
                "fraction_of_bound": new_tokens / seconds / bound,
            }
        )
    median = sorted(calls, key=lambda call: call["fraction_of_bound"])[len(calls) // 2]
    return {
        "batch_size": batch_size,
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        **median,
        "tokens_per_s": batch_size * new_tokens / median["seconds"],
        "steps_per_s": new_tokens / median["seconds"],
        "bound_steps_per_s": median["bandwidth_gbs"] * 1e9 / weight_bytes,
        "calls": calls,
    }


def measure_shape(config: ModelConfig, *, new_tokens: int, repeats: int, quick: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    model = Transformer(config).eval()
    runs = {}
    for layout in LAYOUTS:
        if layout == "decode":
            prepare_for_decoding(model)
        for batch_size in BATCH_SIZES:
            run = measure_generation(
                model,
                batch_size=batch_size,
                prompt_tokens=PROMPT_TOKENS,
                new_tokens=new_tokens,
                repeats=repeats,
                quick=quick,
            )
            run["layout"] = layout
            runs[f"{layout}_batch_{batch_size}"] = run
    return {"config": config.to_dict(), "weight_bytes_per_step": weight_bytes_per_step(model), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed generate_ids calls per case (the median is reported)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="8 new tokens, one repeat, to check the script runs"
    )
    args = parser.parse_args()
    use_all_threads()
    machine = machine_description()
    new_tokens, repeats = (8, 1) if args.quick else (NEW_TOKENS, args.repeats)
    with BackgroundLoad() as load:
        peaks = measure_peaks(quick=args.quick)
        shapes = {
            name: measure_shape(config, new_tokens=new_tokens, repeats=repeats, quick=args.quick)
            for name, config in benchmark_shapes().items()
        }
    print(
        f"{machine['cpu']}, {machine['torch_threads']} threads, torch {machine['torch']}, {machine['date']}"
    )
    print(
        f"read bandwidth {peaks['read_bandwidth_gbs']:.1f} GB/s at the start; greedy, {PROMPT_TOKENS}-token prompt, "
        f"{new_tokens} new tokens, KV cache; bound = bandwidth just before each call / weight bytes per step; "
        f"median of {repeats} calls"
    )
    rows = []
    for name, shape in shapes.items():
        for run in shape["runs"].values():
            rows.append(
                [
                    name,
                    run["layout"],
                    run["batch_size"],
                    shape["weight_bytes_per_step"] / 1e6,
                    run["tokens_per_s"],
                    1e3 / run["steps_per_s"],
                    run["bandwidth_gbs"],
                    run["bound_steps_per_s"],
                    f"{run['fraction_of_bound']:.1%}",
                ]
            )
    print(
        format_table(
            [
                "shape",
                "layout",
                "batch",
                "weight MB",
                "tokens/s",
                "ms/step",
                "GB/s",
                "bound steps/s",
                "of bound",
            ],
            rows,
        )
    )
    met = all(s["runs"]["decode_batch_1"]["fraction_of_bound"] >= BOUND_TARGET for s in shapes.values())
    print(f"target: decode layout, batch 1 ≥ {BOUND_TARGET:.0%} of the bound — {'met' if met else 'missed'}")
    print(load_note(load.share))
    if not args.quick:
        figures = {
            **peaks,
            "background_cpu_share": load.share,
            "bound_target": BOUND_TARGET,
            "target_met": met,
            "shapes": shapes,
        }
        print(f"wrote {write_results('generation_throughput', machine, figures)}")


if __name__ == "__main__":
    main()
