"""A stand-in for EngineClient with fixed, deterministic data: snapshots and fast Pilot tests of the workbench."""

from __future__ import annotations

import json
import math
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from engine.errors import LLModelError, NotFoundError
from engine.specs import JobSpec

WORKSPACE = Path("/srv/llmodel/workspace")  # never created: the fake answers for it (unless given a root)
RUN_A, RUN_B = "pretrain-20260101-120000-a1b2", "pretrain-20260102-090000-c3d4"
TOKENS = ["def", " greet", "(", "name", "):", "\n", "    ", "return", ' "', "Hello", ",", ' "']
NANO = {
    "vocab_size": 512,
    "d_model": 64,
    "n_layers": 2,
    "n_heads": 4,
    "n_kv_heads": 4,
    "d_ff": 128,
    "max_len": 128,
    "dropout": 0.0,
    "pad_token_id": 0,
    "bos_token_id": 2,
    "eos_token_id": 3,
    "use_rope": True,
    "pos_type": "rope",
    "rope_theta": 10000.0,
    "use_gradient_checkpointing": False,
    "attention_type": "flash",
    "ffn_type": "swiglu",
    "norm_type": "rmsnorm",
    "norm_first": True,
    "initializer_range": 0.02,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "name": "nano",
}


def curves(steps: int, lr: float, seed: float) -> dict[str, list[list[float]]]:
    """A smooth loss curve with a wiggle, warmup-cosine learning rate, steady throughput."""
    loss = [[s, 6.2 * math.exp(-s / 25) + 2.0 + 0.08 * math.sin(s * seed)] for s in range(1, steps + 1)]
    val = [[s, 6.0 * math.exp(-s / 25) + 2.2] for s in range(10, steps + 1, 10)]
    rate = [
        [s, lr * min(1.0, s / 5) * (0.55 + 0.45 * math.cos(math.pi * s / steps))] for s in range(1, steps + 1)
    ]
    speed = [[s, 4000 + 300 * math.sin(s * 0.7)] for s in range(1, steps + 1)]
    grad = [[s, 0.5 + 0.4 * math.exp(-s / 10) + 0.05 * math.cos(s)] for s in range(1, steps + 1)]
    step_time = [[s, 0.5] for s in range(1, steps + 1)]
    return {
        "loss": loss,
        "val_loss": val,
        "lr": rate,
        "tokens_per_s": speed,
        "grad_norm": grad,
        "step_time": step_time,
    }


def attention(layers: int = 2, heads: int = 2) -> list[list[list[list[float]]]]:
    """Causal maps: each query spreads its attention over earlier tokens, differently per layer and head."""
    n = len(TOKENS)
    maps = []
    for layer in range(layers):
        per_head = []
        for head in range(heads):
            rows = []
            for i in range(n):
                raw = [
                    math.exp(-abs(i - j) * (0.3 + 0.4 * head + 0.2 * layer)) if j <= i else 0.0
                    for j in range(n)
                ]
                total = sum(raw)
                rows.append([round(v / total, 4) for v in raw])
            per_head.append(rows)
        maps.append(per_head)
    return maps


def make_run(run_id: str, lr: float, seed: float, steps: int = 40) -> dict[str, Any]:
    history = curves(steps, lr, seed)
    return {
        "id": run_id,
        "kind": "pretrain",
        "status": "completed",
        "parent_id": None,
        "run_dir": str(WORKSPACE / "runs" / run_id),
        "created": 1767268800.0,
        "step": steps,
        "total_steps": steps,
        "metrics": {"loss": history["loss"][-1][1], "val_loss": history["val_loss"][-1][1]},
        "info": {},
        "error": None,
        "pid": None,
        "event_offset": 200,
        "config": {"model_config": NANO, "train_config": {"learning_rate": lr, "max_steps": steps}},
        "checkpoints": [
            {
                "step": 20,
                "path": str(WORKSPACE / "runs" / run_id / "checkpoints" / "step-00000020"),
                "best": False,
            },
            {
                "step": 40,
                "path": str(WORKSPACE / "runs" / run_id / "checkpoints" / "step-00000040"),
                "best": True,
            },
        ],
        "history": history,
    }


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A run's config as the catalog compares it: ``{"model_config": {"d_model": 64}}`` → ``model_config.d_model``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        flat.update(flatten(value, name) if isinstance(value, dict) and value else {name: value})
    return flat


def checkpoint_path(run_id: str, step: int) -> str:
    return str(WORKSPACE / "runs" / run_id / "checkpoints" / f"step-{step:08d}")


FINETUNE_RUN = "finetune-20260102-150000-e5f6"
ADAPTERS = [
    {
        "name": "chat-qlora",
        "path": str(WORKSPACE / "adapters" / "chat-qlora"),
        "run_id": "finetune-20260102-160000-a7b8",
        "method": "qlora",
        "base_checkpoint": checkpoint_path(RUN_A, 40),
        "base_sha256": "5d41402abc4b2a76b9719d911017c592",
        "rank": 16,
        "alpha": 32.0,
        "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "dataset": str(WORKSPACE / "datasets" / "stdlib-instructions" / "instructions.train.jsonl"),
        "metrics": {"loss": 1.71, "val_loss": 1.79},
        "meta": {},
        "created": 1767373200.0,
    },
    {
        "name": "chat-sums",
        "path": str(WORKSPACE / "adapters" / "chat-sums"),
        "run_id": FINETUNE_RUN,
        "method": "lora",
        "base_checkpoint": checkpoint_path(RUN_A, 40),
        "base_sha256": "5d41402abc4b2a76b9719d911017c592",
        "rank": 8,
        "alpha": 16.0,
        "targets": ["q_proj", "v_proj"],
        "dataset": "/home/me/sums.jsonl",
        "metrics": {"loss": 1.62, "val_loss": 1.84},
        "meta": {},
        "created": 1767366000.0,
    },
]

TASKS = [
    {
        "name": "stdlib-ppl",
        "kind": "perplexity",
        "description": "held-out standard-library files: cross-entropy, "
        "perplexity, bits per byte, token accuracy",
        "chance": "uniform over the vocabulary: perplexity = vocab size",
        "needs_data": False,
        "data_layout": None,
    },
    {
        "name": "stdlib-names",
        "kind": "multiple_choice",
        "description": "which of four function names fits a held-out docstring",
        "chance": "acc 0.25",
        "needs_data": False,
        "data_layout": None,
    },
    {
        "name": "stdlib-signatures",
        "kind": "generate",
        "description": "docstring → signature on the instruction set's held-out split",
        "chance": "a constant answer (the most common training signature)",
        "needs_data": False,
        "data_layout": None,
    },
    {
        "name": "hellaswag",
        "kind": "multiple_choice",
        "description": "commonsense sentence completion",
        "chance": "acc 0.25",
        "needs_data": True,
        "data_layout": "a JSONL/JSON/parquet file with ctx (or ctx_a/ctx_b), endings and label",
    },
]


def evaluation(
    run_id: str,
    checkpoint: str | None,
    adapter: str | None,
    created: float,
    scores: dict[str, tuple[str, float, float | None, float | None]],
    *,
    model: str | None = None,
    step: int = 40,
) -> list[dict[str, Any]]:
    """Rows of ``EngineClient.evaluations()`` for one evaluation: metric → (task, value, stderr, chance)."""
    return [
        {
            "run_id": run_id,
            "model": model or checkpoint,
            "checkpoint": checkpoint,
            "step": step,
            "adapter": adapter,
            "task": task,
            "metric": metric,
            "value": value,
            "stderr": stderr,
            "n": 50,
            "chance": chance,
            "settings": {"limit": 50},
            "created": created,
        }
        for metric, (task, value, stderr, chance) in scores.items()
    ]


EVALUATIONS = [
    *evaluation(
        "evaluate-20260102-170000-0007",
        checkpoint_path(RUN_A, 40),
        str(WORKSPACE / "adapters" / "chat-sums"),
        1767373800.0,
        {
            "acc": ("stdlib-names", 0.42, 0.07, 0.25),
            "acc_norm": ("stdlib-names", 0.38, 0.069, 0.25),
            "perplexity": ("stdlib-ppl", 41.2, None, 512.0),
        },
    ),
    *evaluation(
        "evaluate-20260102-120000-0006",
        checkpoint_path(RUN_A, 40),
        None,
        1767355200.0,
        {
            "acc": ("stdlib-names", 0.36, 0.068, 0.25),
            "acc_norm": ("stdlib-names", 0.34, 0.067, 0.25),
            "perplexity": ("stdlib-ppl", 44.0, None, 512.0),
        },
    ),
    *evaluation(
        "evaluate-20260102-100000-0005",
        checkpoint_path(RUN_B, 40),
        None,
        1767348000.0,
        {"acc": ("stdlib-names", 0.22, 0.059, 0.25), "perplexity": ("stdlib-ppl", 61.5, None, 512.0)},
    ),
    *evaluation(
        RUN_A,
        None,
        None,
        1767272000.0,
        {"acc": ("stdlib-names", 0.3, 0.065, 0.25)},
        model=str(WORKSPACE / "runs" / RUN_A),
    ),
]

STUDY = "arch"
STUDY_SETTINGS = {
    "space": {
        "params": {
            "d_model": {"type": "categorical", "choices": [32, 64, 96]},
            "n_layers": {"type": "int", "low": 1, "high": 4},
            "ffn_type": {"type": "categorical", "choices": ["swiglu", "gelu"]},
        },
        "fixed": {},
    },
    "data_path": str(WORKSPACE / "datasets" / "stdlib-512"),
    "tokenizer_path": None,
    "objectives": ["val_loss", "params"],
    "n_trials": 8,
    "budget_steps": 100,
    "budget_minutes": None,
    "sampler": "nsga2",
    "population": 4,
    "seed": None,
    "max_params": 2_000_000,
    "base_model": NANO,
    "base_train": {"eval_interval": 25, "eval_batches": 4},
}


def trial(
    number: int,
    state: str,
    d_model: int,
    layers: int,
    ffn: str,
    val_loss: float | None,
    params: int,
    reason: str | None = None,
) -> dict[str, Any]:
    """A row of a study report's ``trials`` (engine/evolve/report.py: TrialRow)."""
    trained = state not in ("rejected",)
    return {
        "number": number,
        "state": state,
        "params": {"d_model": d_model, "n_layers": layers, "ffn_type": ffn},
        "objectives": {"val_loss": val_loss, "params": float(params)} if val_loss is not None else {},
        "parameters": params,
        "reason": reason,
        "seconds": 42.0 if state == "complete" else None,
        "run_dir": str(WORKSPACE / "runs" / f"trial-{STUDY}-{number}") if trained else None,
    }


def study_report() -> dict[str, Any]:
    """``EngineClient.study("arch")``: six trials, two of them on the Pareto front."""
    return {
        "name": STUDY,
        "settings": STUDY_SETTINGS,
        "trials": [
            trial(0, "complete", 64, 2, "swiglu", 3.12, 104_000),
            trial(1, "complete", 96, 3, "swiglu", 2.98, 362_000),
            trial(
                2,
                "rejected",
                96,
                4,
                "gelu",
                None,
                2_400_000,
                "2,400,000 parameters is over --max-params 2,000,000",
            ),
            trial(3, "complete", 32, 1, "gelu", 3.41, 25_000),
            trial(4, "complete", 64, 3, "gelu", 3.20, 140_000),
            trial(5, "running", 64, 4, "swiglu", None, 170_000),
        ],
        "pareto_front": [3, 0, 1],
        "best_so_far": [[0, 3.12], [1, 2.98], [3, 2.98], [4, 2.98]],
        "importances": {"d_model": 0.58, "n_layers": 0.31, "ffn_type": 0.11},
    }


def rebased(data: Any, root: Path) -> Any:
    """``data`` with every path under WORKSPACE moved under ``root`` (a test's own folder)."""
    if isinstance(data, str):
        return str(root) + data[len(str(WORKSPACE)) :] if data.startswith(str(WORKSPACE)) else data
    if isinstance(data, dict):
        return {key: rebased(value, root) for key, value in data.items()}
    if isinstance(data, list):
        return [rebased(value, root) for value in data]
    return data


class FakeClient:
    """EngineClient's surface (the methods the workbench calls) answered from fixed data; records each call that
    changes something in ``calls`` as ``(method, arguments)``.

    ``root``: where the workspace lies (default WORKSPACE, never created); ``on_disk`` creates its checkpoints,
    datasets and adapters there, so that the engine's job-spec builders, which check the files a spec names,
    accept them."""

    record = None

    def __init__(self, *, empty: bool = False, root: Path = WORKSPACE, on_disk: bool = False) -> None:
        self.root = root
        self.runs: dict[str, dict[str, Any]] = (
            {}
            if empty
            else rebased({RUN_A: make_run(RUN_A, 1e-3, 1.3), RUN_B: make_run(RUN_B, 3e-3, 0.7)}, root)
        )
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.serve: dict[str, Any] = {"running": False}
        self.serve_health: list[str] = []  # the healths a newly started server reports, one per status read
        self.attention_steps: tuple[int, ...] = (20, 40)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        # run id → events its follow stream yields after history
        self.live: dict[str, list[dict[str, Any]]] = {}
        self.closed = threading.Event()
        self.dataset_rows = [
            {"name": "stdlib-512", "path": str(root / "datasets" / "stdlib-512"), "vocab_size": 512}
        ]
        self.adapter_rows: list[dict[str, Any]] = [] if empty else rebased([dict(a) for a in ADAPTERS], root)
        self.evaluation_rows: list[dict[str, Any]] = (
            [] if empty else rebased([dict(r) for r in EVALUATIONS], root)
        )
        self.study_reports: dict[str, dict[str, Any]] = (
            {} if empty else {STUDY: rebased(study_report(), root)}
        )
        if on_disk:
            self.make_on_disk()

    def checkpoint_path(self, run_id: str, step: int) -> str:
        return str(self.root / "runs" / run_id / "checkpoints" / f"step-{step:08d}")

    def asked(self, method: str) -> list[dict[str, Any]]:
        """The arguments of each call of ``method`` that changed something, in order."""
        return [arguments for name, arguments in self.calls if name == method]

    def jobs(self) -> list[dict[str, Any]]:
        """Each submitted job as the engine receives it: ``{"kind", "spec", "parent_id"}``."""
        return self.asked("submit_job")

    def make_on_disk(self) -> None:
        """The workspace's folders: each checkpoint complete (a marker, a meta.json listing no weight files),
        each dataset and adapter folder."""
        for run in self.runs.values():
            for checkpoint in run["checkpoints"]:
                folder = Path(checkpoint["path"])
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "COMPLETE").write_text("", encoding="utf-8")
                meta = {"step": checkpoint["step"], "model_config": NANO, "files": {}}
                (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        for row in (*self.dataset_rows, *self.adapter_rows):
            Path(row["path"]).mkdir(parents=True, exist_ok=True)

    # -- the workspace -------------------------------------------------------------------------------

    def workspace_listing(self) -> dict[str, Any]:
        total = len(self.runs)
        counts = {
            "queued": 0,
            "running": 0,
            "completed": total,
            "failed": 0,
            "cancelled": 0,
            "failed_resumable": 0,
        }
        any_runs = bool(self.runs)
        summary = {
            "configs": int(any_runs),
            "tokenizers": int(any_runs),
            "datasets": int(any_runs),
            "runs_total": total,
            "runs": counts,
        }
        return {
            "path": str(self.root),
            "summary": summary,
            "jobs": [],
            "runs": [self._listed(run) for run in self.runs.values()],
            "adapters": [dict(a) for a in self.adapter_rows],
            "configs": [
                {
                    "name": "nano",
                    "path": str(self.root / "configs" / "nano.json"),
                    "kind": "model",
                    "data": NANO,
                }
            ]
            if any_runs
            else [],
            "tokenizers": [
                {
                    "name": "stdlib-512",
                    "path": str(self.root / "tokenizers" / "stdlib-512"),
                    "vocab_size": 512,
                }
            ]
            if any_runs
            else [],
            "datasets": [dict(d) for d in self.dataset_rows] if any_runs else [],
            "studies": [self._study_row(report) for report in self.study_reports.values()],
        }

    def tasks(self) -> list[dict[str, Any]]:
        return [dict(t) for t in TASKS]

    def evaluations(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.evaluation_rows]

    def workspace_events(self, since: int = 0) -> Iterator[dict[str, Any]]:
        while not self.closed.is_set():
            try:
                event = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if event.get("type") == "_disconnect":
                raise ConnectionError("the fake engine went away")
            yield event

    # -- jobs ------------------------------------------------------------------------------------------

    def submit_job(self, spec: JobSpec, *, parent_id: str | None = None) -> str:
        self.calls.append(("submit_job", {"kind": spec.kind, "spec": spec.to_dict(), "parent_id": parent_id}))
        run_id = f"{spec.kind}-20260103-000000-0001"
        self.events.put({"type": "job", "run_id": run_id, "status": "queued"})
        return run_id

    def cancel(self, run_id: str) -> dict[str, Any]:
        self.calls.append(("cancel", {"run_id": run_id}))
        return {"status": "cancelling"}

    def resume(self, run_id: str, spec: JobSpec | None = None) -> dict[str, Any]:
        self.calls.append(("resume", {"run_id": run_id}))
        return {"status": "queued", "offset": 0}

    # -- runs --------------------------------------------------------------------------------------------

    def run(self, run_id: str) -> dict[str, Any]:
        return {k: v for k, v in self._run(run_id).items() if k != "history"}

    def checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        return [dict(c) for c in self._run(run_id)["checkpoints"]]

    def compare(self, run_ids: list[str]) -> dict[str, Any]:
        runs = {
            i: {
                "kind": self._run(i)["kind"],
                "status": "completed",
                "step": 40,
                "metrics": self.runs[i]["metrics"],
                "config": flatten(self.runs[i]["config"]),
            }
            for i in run_ids
        }
        keys = sorted({key for run in runs.values() for key in run["config"]})
        differing = [k for k in keys if len({repr(run["config"].get(k)) for run in runs.values()}) > 1]
        return {"runs": runs, "differing": differing}

    def metrics(self, run_id: str, names: list[str] | None = None, *, max_points: int | None = None) -> Any:
        history = self._run(run_id)["history"]
        return {name: history[name] for name in names or list(history) if name in history}

    def samples(self, run_id: str, limit: int = 20) -> list[dict[str, Any]]:
        self._run(run_id)
        return [
            {"step": 20, "prompt": "def ", "text": "def greet(name):\n    return name"},
            {"step": 40, "prompt": "def ", "text": 'def greet(name):\n    return "Hello, " + name'},
        ]

    def logs(self, run_id: str, tail: int = 200) -> dict[str, Any]:
        lines = [
            f"[train.log] 2026-01-01 12:00:{s:02d} INFO  step {s}/40 loss {4.0 - s / 20:.4f}"
            for s in range(2, 41, 2)
        ]
        return {"run_id": self._run(run_id)["id"], "lines": lines}

    def attention(self, run_id: str) -> list[dict[str, Any]]:
        self._run(run_id)
        return [
            {
                "step": s,
                "path": f"attention/step-{s:08d}.safetensors",
                "layers": 2,
                "heads": 2,
                "tokens": TOKENS,
            }
            for s in self.attention_steps
        ]

    def attention_map(self, run_id: str, step: int) -> dict[str, Any]:
        self._run(run_id)
        return {"step": step, "tokens": TOKENS, "weights": attention()}

    def follow(self, run_id: str, offset: int = 0) -> Iterator[dict[str, Any]]:
        yield from self.live.get(run_id, [])
        yield {"type": "end", "status": self.runs.get(run_id, {}).get("status", "completed")}

    # -- studies and serving ---------------------------------------------------------------------------

    def study(self, name: str) -> dict[str, Any]:
        if name not in self.study_reports:
            raise NotFoundError(f"no study named {name} in this workspace; see `llmodel evolve list`")
        return self.study_reports[name]

    def export_trial(self, name: str, trial: int | None = None) -> dict[str, Any]:
        """The trial's model config and training settings, as written into the workspace's configs."""
        self.calls.append(("export_trial", {"name": name, "trial": trial}))
        report = self.study(name)
        chosen = next(t for t in report["trials"] if t["number"] == trial)
        if chosen["state"] != "complete":
            raise LLModelError(f"trial {trial} of {name} did not complete ({chosen['state']})")
        label = f"{name}-trial{trial}"
        model = {**NANO, **chosen["params"], "d_ff": chosen["params"]["d_model"] * 2, "name": f"{trial}-nano"}
        train = {"batch_size": 8, "learning_rate": 0.0012, "seq_len": 64, "warmup_steps": 10}
        folder = self.root / "configs" / label
        return {
            "trial": trial,
            "name": label,
            "model_config": model,
            "train_config": train,
            "model_path": str(folder / "model.json"),
            "train_path": str(folder / "train.json"),
            "data_path": report["settings"]["data_path"],
            "tokenizer_path": None,
        }

    def serve_status(self) -> dict[str, Any]:
        if self.serve.get("running"):
            self.serve["health"] = self.serve_health.pop(0) if self.serve_health else "ok"
        return dict(self.serve)

    def serve_start(
        self,
        model: str,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str | None = None,
        rate_limit: float | None = None,
        adapters: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        self.calls.append(
            (
                "serve_start",
                {"model": model, "host": host, "port": port, "api_key": api_key, "adapters": adapters},
            )
        )
        self.serve = {
            "running": True,
            "model": model,
            "host": host,
            "port": port,
            "url": f"http://{host}:{port}",
            "auth": bool(api_key),
            "health": "starting" if self.serve_health else "ok",
            "requests": 3,
            "adapters": dict(adapters or {}),
        }
        return dict(self.serve)

    def serve_stop(self) -> dict[str, Any]:
        self.calls.append(("serve_stop", {}))
        self.serve = {"running": False}
        return {"running": False}

    def close(self) -> None:
        self.closed.set()

    # -- helpers -----------------------------------------------------------------------------------------

    def _run(self, run_id: str) -> dict[str, Any]:
        if run_id not in self.runs:
            raise NotFoundError(f"no run named {run_id}; see `llmodel runs list`")
        return self.runs[run_id]

    def _listed(self, run: dict[str, Any]) -> dict[str, Any]:
        """A run as the workspace listing gives it: its usable checkpoints (the engine leaves out the pruned
        ones, ``pruned`` here) with the adapters trained on each."""
        row = {k: v for k, v in run.items() if k not in ("history", "config", "event_offset")}
        usable = [c for c in run["checkpoints"] if not c.get("pruned")]
        newest = max((c["step"] for c in usable), default=None)
        row["checkpoints"] = [
            {
                "step": c["step"],
                "path": c["path"],
                "created": None,
                "best": c["best"],
                "latest": c["step"] == newest,
                "adapters": [a for a in self.adapter_rows if a["base_checkpoint"] == c["path"]],
            }
            for c in usable
        ]
        return row

    def _study_row(self, report: dict[str, Any]) -> dict[str, Any]:
        """A study of the listing (the catalog's counts of this workspace's trials)."""
        states = [t["state"] for t in report["trials"]]
        return {
            "name": report["name"],
            "storage": str(self.root / "studies" / f"{report['name']}.journal"),
            "run_id": f"evolve-20260102-180000-{report['name']}",
            "settings": report["settings"],
            "created": 1767376800.0,
            "updated": 1767380400.0,
            "trials": len(states),
            "complete": states.count("complete"),
            "running": states.count("running"),
        }


def factory(client: FakeClient) -> Callable[[Path, bool], FakeClient]:
    """A ``connect`` callable for LLModelApp that hands out ``client``."""
    return lambda workspace, start: client
