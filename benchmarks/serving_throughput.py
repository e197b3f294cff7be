"""Model server under concurrent streaming clients: aggregate tokens/s and time to first token.

A Llama-shaped model (vocab 4096, d_model 384, 6 layers; random weights — speed does not depend on training) is
served by `python -m engine.server` on a free loopback port. 1, 4 and 8 clients each stream a few
/v1/completions requests (64 tokens, greedy, ignore_eos) back to back. Target: with 8 clients the aggregate
throughput is at least 3x one client's.

Then the same model served with two LoRA adapters over it (rank 16, all-linear, random updates) against the plain
server, alternated and repeated: one client's tokens/s for the base model (which should keep the compiled CPU
decode path) and for an adapter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch

from benchmarks.hardware import machine_description
from benchmarks.report import format_table, write_results
from engine.data.stdlib_corpus import build_stdlib_corpus
from engine.data.tokenizer_training import train_tokenizer
from engine.model import ModelConfig, Transformer
from engine.net import free_port
from engine.runs.checkpoint import save_checkpoint

SHAPE = {"d_model": 384, "n_layers": 6, "n_heads": 6, "d_ff": 1024, "max_len": 256}
PROMPTS = [
    "def main():\n",
    "import os\n",
    "class Parser:\n",
    "The module ",
    "# Copyright ",
    "for key in ",
    "return self.",
    "with open(",
]


def make_adapters(run_dir: Path, count: int) -> list[str]:
    """``count`` LoRA adapters (rank 16, all-linear) over the run's checkpoint, with random non-zero updates."""
    from engine.adapters.files import save_adapter
    from engine.adapters.lora import apply_lora
    from engine.adapters.settings import LoraSettings
    from engine.runs.checkpoint import load_weights, resolve_checkpoint

    base = resolve_checkpoint(run_dir)
    pairs = []
    for index in range(count):
        model = Transformer(base.model_config)
        load_weights(base, model)
        settings = LoraSettings(rank=16, alpha=16, target_modules=["all-linear"])
        apply_lora(model, settings)
        torch.manual_seed(100 + index)
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(parameter, std=0.02)
        directory = run_dir.parent.parent / "adapters" / f"a{index}"
        save_adapter(model, directory, settings, base)
        pairs.append(f"a{index}={directory}")
    return pairs


def start_server(run_dir: Path, adapters: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "engine.server",
        "--model",
        str(run_dir),
        "--port",
        str(port),
        "--max-batch",
        "8",
    ]
    for pair in adapters:
        command += ["--adapter", pair]
    server = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError("the model server did not become healthy")


def one_client(url: str, tokens: int, requests: int, model: str | None = None) -> float:
    """One client's tokens/s over ``requests`` streamed completions (of ``model``: base when None)."""
    started, total = time.perf_counter(), 0
    for index in range(requests):
        total += stream_one(url, PROMPTS[index % len(PROMPTS)], tokens, model)[2]
    return total / (time.perf_counter() - started)


def make_model(root: Path, vocab: int) -> Path:
    corpus = root / "corpus.jsonl"
    build_stdlib_corpus(corpus, max_bytes=2_000_000)
    tokenizer = train_tokenizer([corpus], root / "tokenizer", vocab)
    config = ModelConfig.from_dict({**SHAPE, "vocab_size": tokenizer.vocab_size})
    torch.manual_seed(0)
    run_dir = root / "runs" / "bench"
    save_checkpoint(run_dir / "checkpoints", step=0, model=Transformer(config), model_config=config,
                    meta={"tokenizer": str(root / "tokenizer")})  # fmt: skip
    return run_dir


def stream_one(url: str, prompt: str, tokens: int, model: str | None = None) -> tuple[float, float, int]:
    """(time to first token, total time, tokens received) for one streaming completion."""
    body = {"prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True, "ignore_eos": True}
    if model is not None:
        body["model"] = model
    started = time.perf_counter()
    first, count = None, 0
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=120) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and chunk["choices"][0]["text"]:
                count += 1
                if first is None:
                    first = time.perf_counter() - started
    return first or float("nan"), time.perf_counter() - started, count


def drive(url: str, clients: int, requests_each: int, tokens: int) -> dict[str, float]:
    ttfts: list[float] = []
    total_tokens = 0
    lock = threading.Lock()

    def client(index: int) -> None:
        nonlocal total_tokens
        for r in range(requests_each):
            ttft, _, count = stream_one(url, PROMPTS[(index + r) % len(PROMPTS)], tokens)
            with lock:
                ttfts.append(ttft)
                total_tokens += count

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ttfts.sort()
    return {
        "clients": clients, "tokens": total_tokens, "seconds": wall, "tokens_per_s": total_tokens / wall,
        "ttft_p50_ms": statistics.median(ttfts) * 1000, "ttft_p99_ms": ttfts[int(0.99 * (len(ttfts) - 1))] * 1000,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter requests; nothing written")
    args = parser.parse_args()
    tokens, requests_each = (16, 1) if args.quick else (64, 3)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = make_model(Path(tmp), 4096)
        server, url = start_server(run_dir, [])
        try:
            drive(url, 1, 1, 8)  # warm up
            results = [drive(url, clients, requests_each, tokens) for clients in (1, 4, 8)]
        finally:
            server.terminate()
            server.wait(timeout=30)
        adapters = make_adapters(run_dir, 2)
        side_by_side: dict[str, list[float]] = {
            "plain base": [],
            "adapters: base": [],
            "adapters: adapter a0": [],
        }
        for _ in range(1 if args.quick else 3):  # alternate the two servers, so drift hits both alike
            for pairs in ([], adapters):
                server, url = start_server(run_dir, pairs)
                try:
                    one_client(url, 8, 1)  # warm up
                    if pairs:
                        side_by_side["adapters: base"].append(one_client(url, tokens, requests_each))
                        side_by_side["adapters: adapter a0"].append(
                            one_client(url, tokens, requests_each, "a0")
                        )
                    else:
                        side_by_side["plain base"].append(one_client(url, tokens, requests_each))
                finally:
                    server.terminate()
                    server.wait(timeout=30)
    rows = [
        [r["clients"], r["tokens"], r["tokens_per_s"], r["ttft_p50_ms"], r["ttft_p99_ms"]] for r in results
    ]
    print(format_table(["clients", "tokens", "tokens/s", "TTFT p50 ms", "TTFT p99 ms"], rows))
    speedup = results[2]["tokens_per_s"] / results[0]["tokens_per_s"]
    print(
        f"8 clients vs 1: {speedup:.2f}x aggregate throughput (target ≥ 3x): {'met' if speedup >= 3 else 'NOT met'}"
    )
    medians = {name: statistics.median(values) for name, values in side_by_side.items()}
    print(format_table(["one client", "tokens/s (median)", "runs"],
                       [[name, medians[name], " ".join(f"{v:.0f}" for v in side_by_side[name])] for name in medians]))  # fmt: skip
    kept = medians["adapters: base"] / medians["plain base"]
    print(f"base model served beside 2 adapters: {kept:.2f} of its speed on the plain server")
    if not args.quick:
        figures = {
            "adapters_side_by_side": {"tokens_per_s": side_by_side, "medians": medians, "base_kept": kept},
            "shape": SHAPE,
            "vocab_size": 4096,
            "tokens_per_request": tokens,
            "runs": results,
            "speedup_8_vs_1": speedup,
        }
        print(f"wrote {write_results('serving_throughput', machine_description(), figures)}")


if __name__ == "__main__":
    main()
