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


class BackgroundLoad:
    """Measures the share of all CPUs that other processes used while the ``with`` block ran (Linux only).

    On a shared machine a busy neighbour distorts every figure; the benchmarks record this share beside them.
    """

    share: float | None = None

    def __enter__(self) -> BackgroundLoad:
        self._start = _cpu_jiffies(), _own_cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        (busy0, total0), own0 = self._start
        (busy1, total1), own1 = _cpu_jiffies(), _own_cpu_seconds()
        if total1 > total0:
            own = (own1 - own0) * os.sysconf("SC_CLK_TCK")
            self.share = max(0.0, (busy1 - busy0 - own) / (total1 - total0))


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine from /proc/stat, in clock ticks; (0, 0) elsewhere."""
    try:
        with open("/proc/stat", encoding="utf-8") as fh:
            fields = [int(v) for v in fh.readline().split()[1:8]]
    except OSError:
        return 0, 0
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def load_note(share: float | None) -> str:
    """One line on how busy the rest of the machine was during the measurement."""
    if share is None:
        return "background CPU load: unknown"
    warning = "  (WARNING: a busy machine; rerun when it is idle)" if share > 0.05 else ""
    return f"background CPU load during the run: {share:.0%} of all cores{warning}"


def matmul_peak_gflops(sizes: tuple[int, ...] = (2048, 4096), repeats: int = 5) -> float:
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
    with BackgroundLoad() as load:
        peaks: dict[str, float | None] = dict(measure_peaks(quick=args.quick))
    peaks["background_cpu_share"] = load.share
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
    print(load_note(load.share))
    if not args.quick:
        print(f"wrote {write_results('hardware', machine, peaks)}")


if __name__ == "__main__":
    main()
