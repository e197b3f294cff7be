"""How an evaluation runs its tasks: documents per task, perplexity stride, sampling, and local data files."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalSettings:
    limit: int | None = None
    stride: int | None = None  # perplexity windows overlap by max_len - stride tokens when set
    temperature: float = 0.0  # generation tasks are greedy unless told otherwise
    top_p: float | None = None
    seed: int = 1234
    data_paths: dict[str, str] = field(default_factory=dict)  # task name → local file
