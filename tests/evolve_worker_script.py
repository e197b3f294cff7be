"""A study worker in its own process, for the multi-worker and kill tests: ``python evolve_worker_script.py JOURNAL
STUDY OUT_FILE SECONDS_PER_TRIAL``. Trials "train" by sleeping and score a known function of their parameters, so
the test can check the study's bookkeeping without the cost of real training."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def score(params: dict) -> float:
    """A deterministic objective: lowest at learning_rate 3e-3 with 2 layers."""
    import math

    return (math.log10(params["learning_rate"]) - math.log10(3e-3)) ** 2 + 0.1 * abs(params["n_layers"] - 2)


def main() -> None:
    journal, name, out_file, seconds = sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
    from engine.evolve.study import load_study
    from engine.evolve.worker import run_worker

    study, settings = load_study(name, journal)
    trained: list[int] = []

    def train(trial, run_dir, stop):
        (out_file.parent / f"started-{trial.number}").write_text(json.dumps(trial.params))
        time.sleep(seconds)
        trained.append(trial.number)
        return [score(trial.params)]

    summary = run_worker(study, settings, out_file.parent, train=train)
    out_file.write_text(json.dumps({"completed": summary.numbers, "trained": trained}))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
