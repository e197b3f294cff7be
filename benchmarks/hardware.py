"""What this machine can do at best: fp32 matmul peak and memory read bandwidth, plus what the machine is.

Run ``python -m benchmarks.hardware``; the training and generation benchmarks call :func:`measure_peaks` too, so
their ratios (MFU, fraction of the bandwidth bound) always use figures measured in the same process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from typing import Any

import torch

from benchmarks.report import format_table, write_results


def use_all_threads() -> int:
    """Let torch use every CPU this process may run on; returns the thread count."""
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_description() -> dict[str, Any]:
    """CPU, cores, threads, software versions and the date (UTC), as recorded in every result file."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def matmul_peak_gflops(sizes: tuple[int, ...] = (2048, 4096), repeats: int = 3) -> float:
    """Best fp32 GFLOP/s over square matmuls of the given sizes (2·n³ FLOPs each)."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        torch.mm(a, b, out=out)  # warm up the BLAS threads and the output pages
        for _ in range(repeats):
            started = time.perf_counter()
            torch.mm(a, b, out=out)
            best = max(best, 2 * n**3 / (time.perf_counter() - started) / 1e9)
    return best


def memory_bandwidth_gbs(nbytes: int = 1 << 30, repeats: int = 5) -> float:
    """Best read bandwidth in GB/s (10⁹ bytes) from summing a float32 tensor far larger than the caches."""
    x = torch.ones(nbytes // 4)
    x.sum()  # fault in the pages before timing
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        x.sum()
        best = max(best, nbytes / (time.perf_counter() - started) / 1e9)
    return best


def measure_peaks(*, quick: bool = False) -> dict[str, float]:
    """The machine's matmul peak (GFLOP/s) and read bandwidth (GB/s); ``quick`` uses small, fast sizes."""
    if quick:
        return {
            "matmul_peak_gflops": matmul_peak_gflops((512,), repeats=2),
            "read_bandwidth_gbs": memory_bandwidth_gbs(64 << 20, repeats=2),
        }
    return {"matmul_peak_gflops": matmul_peak_gflops(), "read_bandwidth_gbs": memory_bandwidth_gbs()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    args = parser.parse_args()
    use_all_threads()
    machine = machine_description()
    peaks = measure_peaks(quick=args.quick)
    print(
        f"{machine['cpu']}, {machine['cores']} cores, torch {machine['torch']} ({machine['torch_threads']} threads)"
    )
    print(
        format_table(
            ["measure", "value", "unit"],
            [
                ["fp32 matmul peak", peaks["matmul_peak_gflops"], "GFLOP/s"],
                ["memory read bandwidth", peaks["read_bandwidth_gbs"], "GB/s"],
            ],
        )
    )
    if not args.quick:
        print(f"wrote {write_results('hardware', machine, peaks)}")


if __name__ == "__main__":
    main()
