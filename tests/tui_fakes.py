"""A stand-in for EngineClient with fixed, deterministic data: snapshots and fast Pilot tests of the workbench."""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import LLModelError

WORKSPACE = Path("/srv/llmodel/workspace")  # never created: the fake answers for it
RUN_A, RUN_B = "pretrain-20260101-120000-a1b2", "pretrain-20260102-090000-c3d4"
TOKENS = ["def", " greet", "(", "name", "):", "\n", "    ", "return", ' "', "Hello", ",", ' "']
NANO = {"vocab_size": 512, "d_model": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 4, "d_ff": 128, "max_len": 128,
        "dropout": 0.0, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3, "use_rope": True, "pos_type": "rope",
        "rope_theta": 10000.0, "use_gradient_checkpointing": False, "attention_type": "flash", "ffn_type": "swiglu",
        "norm_type": "rmsnorm", "norm_first": True, "initializer_range": 0.02, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True, "name": "nano"}  # fmt: skip


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
        "id": run_id, "kind": "pretrain", "status": "completed", "parent_id": None,
        "run_dir": str(WORKSPACE / "runs" / run_id), "created": 1767268800.0, "step": steps, "total_steps": steps,
        "metrics": {"loss": history["loss"][-1][1], "val_loss": history["val_loss"][-1][1]},
        "info": {}, "error": None, "pid": None, "event_offset": 200,
        "config": {"model_config": NANO, "train_config": {"learning_rate": lr, "max_steps": steps}},
        "checkpoints": [
            {"step": 20, "path": str(WORKSPACE / "runs" / run_id / "checkpoints" / "step-00000020"), "best": False},
            {"step": 40, "path": str(WORKSPACE / "runs" / run_id / "checkpoints" / "step-00000040"), "best": True},
        ],
        "history": history,
    }  # fmt: skip


class FakeClient:
    """Answers the routes the workbench uses from fixed data; records what it was asked to do."""

    record = None

    def __init__(self, *, empty: bool = False) -> None:
        self.runs = {} if empty else {RUN_A: make_run(RUN_A, 1e-3, 1.3), RUN_B: make_run(RUN_B, 3e-3, 0.7)}
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.deletes: list[str] = []
        self.serve: dict[str, Any] = {"running": False}
        self.serve_health: list[str] = []  # the healths a newly started server reports, one per status read
        self.attention_steps: tuple[int, ...] = (20, 40)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.live: dict[
            str, list[dict[str, Any]]
        ] = {}  # run id → events its follow stream yields after history
        self.closed = threading.Event()

    # -- EngineClient's surface ----------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        parts = path.strip("/").split("/")
        if path == "/api/workspace":
            total = len(self.runs)
            return {"path": str(WORKSPACE), "jobs": [], "summary": {
                "configs": 0 if not self.runs else 1, "tokenizers": 0 if not self.runs else 1,
                "datasets": 0 if not self.runs else 1, "runs_total": total,
                "runs": {"queued": 0, "running": 0, "completed": total, "failed": 0, "cancelled": 0, "failed_resumable": 0}}}  # fmt: skip
        if path == "/api/runs":
            return [self._row(run) for run in self.runs.values()]
        if path == "/api/configs":
            return (
                [
                    {
                        "name": "nano",
                        "path": str(WORKSPACE / "configs" / "nano.json"),
                        "kind": "model",
                        "data": NANO,
                    }
                ]
                if self.runs
                else []
            )
        if path == "/api/tokenizers":
            return (
                [
                    {
                        "name": "stdlib-512",
                        "path": str(WORKSPACE / "tokenizers" / "stdlib-512"),
                        "vocab_size": 512,
                    }
                ]
                if self.runs
                else []
            )
        if path == "/api/datasets":
            return (
                [
                    {
                        "name": "stdlib-512",
                        "path": str(WORKSPACE / "datasets" / "stdlib-512"),
                        "vocab_size": 512,
                    }
                ]
                if self.runs
                else []
            )
        if path == "/api/serve":
            if self.serve.get("running"):
                self.serve["health"] = self.serve_health.pop(0) if self.serve_health else "ok"
            return dict(self.serve)
        if path == "/api/runs/compare":
            ids = params["ids"].split(",")
            return {"runs": {i: {"kind": "pretrain", "status": "completed", "step": 40, "metrics": self.runs[i]["metrics"],
                                 "config": {"train_config.learning_rate": self.runs[i]["config"]["train_config"]["learning_rate"],
                                            "model_config.d_model": 64}} for i in ids},
                    "differing": ["train_config.learning_rate"]}  # fmt: skip
        run = self.runs.get(parts[2]) if len(parts) >= 3 and parts[1] == "runs" else None
        if run is None:
            raise LLModelError(f"no run named {parts[2] if len(parts) > 2 else path}")
        tail = parts[3:]
        if not tail:
            return {k: v for k, v in run.items() if k != "history"}
        if tail == ["metrics"]:
            names = params.get("names")
            wanted = names.split(",") if names else list(run["history"])
            return {name: run["history"][name] for name in wanted if name in run["history"]}
        if tail == ["checkpoints"]:
            return run["checkpoints"]
        if tail == ["samples"]:
            return [{"step": 20, "prompt": "def ", "text": "def greet(name):\n    return name"},
                    {"step": 40, "prompt": "def ", "text": 'def greet(name):\n    return "Hello, " + name'}]  # fmt: skip
        if tail == ["logs"]:
            return {
                "run_id": run["id"],
                "lines": [
                    f"[train.log] 2026-01-01 12:00:{s:02d} INFO  step {s}/40 loss {4.0 - s / 20:.4f}"
                    for s in range(2, 41, 2)
                ],
            }
        if tail == ["attention"]:
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
        if len(tail) == 2 and tail[0] == "attention":
            return {"step": int(tail[1]), "tokens": TOKENS, "weights": attention()}
        raise LLModelError(f"the fake engine has no route {path}")

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        body = body or {}
        self.posts.append((path, body))
        if path == "/api/jobs":
            run_id = f"{body['kind']}-20260103-000000-0001"
            self.events.put({"type": "job", "run_id": run_id, "status": "queued"})
            return {"run_id": run_id, "status": "queued"}
        if path == "/api/serve":
            self.serve = {"running": True, "model": body["model"], "host": body["host"], "port": body["port"],
                          "url": f"http://{body['host']}:{body['port']}", "auth": bool(body.get("api_key")),
                          "health": "starting" if self.serve_health else "ok", "requests": 3}  # fmt: skip
            return dict(self.serve)
        if path.endswith("/cancel"):
            return {"status": "cancelling"}
        if path.endswith("/resume"):
            return {"status": "queued", "offset": 0}
        raise LLModelError(f"the fake engine has no route {path}")

    def delete(self, path: str) -> Any:
        self.deletes.append(path)
        self.serve = {"running": False}
        return {"running": False}

    def submit(self, kind: str, spec: dict[str, Any], *, parent_id: str | None = None) -> str:
        return self.post("/api/jobs", {"kind": kind, "spec": spec, "parent_id": parent_id})["run_id"]

    def follow(self, run_id: str, offset: int = 0) -> Iterator[dict[str, Any]]:
        yield from self.live.get(run_id, [])
        yield {"type": "end", "status": self.runs.get(run_id, {}).get("status", "completed")}

    def workspace_events(self, since: int = 0) -> Iterator[dict[str, Any]]:
        while not self.closed.is_set():
            try:
                event = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if event.get("type") == "_disconnect":
                raise ConnectionError("the fake engine went away")
            yield event

    def close(self) -> None:
        self.closed.set()

    # -- helpers -----------------------------------------------------------------------------------------

    @staticmethod
    def _row(run: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in run.items() if k not in ("history", "config", "checkpoints", "event_offset")}


def factory(client: FakeClient):  # type: ignore[no-untyped-def]
    """A ``connect`` callable for LLModelApp that hands out ``client``."""
    return lambda workspace, start: client
