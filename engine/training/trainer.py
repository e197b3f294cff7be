"""The training loop of every run that trains: pretraining and fine-tuning (full, LoRA, QLoRA).

One loop, with validation, samples, events and resumable checkpoints. What differs between pretraining and
fine-tuning is where it starts (fresh weights, or a checkpoint's; optionally LoRA layers over a frozen base) and
what it reads (a :class:`engine.training.data.TrainingData`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from engine.device import autocast, peak_memory_bytes, resolve_device, resolve_precision
from engine.errors import CheckpointError
from engine.fileio import write_json_atomic
from engine.generation import SamplingParams, generate
from engine.model import IGNORE_INDEX, ModelConfig, Transformer, attention_maps
from engine.model.attention_maps import PROBE_TEXT
from engine.runs import checkpoint as ckpt
from engine.runs.events import Event, EventLog
from engine.tokenizer import ROLE_MARKERS, Tokenizer
from engine.training.config import TrainConfig
from engine.training.data import Batch, TokenStreamData, TrainingData, tokens_in, total_steps
from engine.training.optim import build_optimizer, build_scheduler

if TYPE_CHECKING:
    from engine.adapters.settings import LoraSettings


@dataclass
class TrainResult:
    run_dir: Path
    status: str  # "completed" | "cancelled"
    step: int
    total_steps: int
    final_metrics: dict[str, float] = field(default_factory=dict)
    last_checkpoint: Path | None = None


class Trainer:
    """Trains a model into ``run_dir`` from ``data`` (a prepared dataset folder, or any :class:`TrainingData`).

    ``init_from`` starts from a checkpoint's weights with a fresh optimizer (fine-tuning); ``adapter`` then
    freezes them and trains LoRA layers only; ``resume_from`` continues a run of this kind from its checkpoint.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        data: Path | TrainingData,
        run_dir: Path,
        *,
        tokenizer_path: Path | None = None,
        resume_from: Path | None = None,
        init_from: ckpt.Checkpoint | None = None,
        adapter: LoraSettings | None = None,
        kind: str = "pretrain",
        on_event: Callable[[Event], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.model_config, self.cfg = model_config, train_config
        self.run_dir, self.kind = Path(run_dir), kind
        self.should_stop = should_stop or (lambda: False)
        self.tokenizer = Tokenizer.load(tokenizer_path) if tokenizer_path else None
        if isinstance(data, str | Path):
            data = TokenStreamData(Path(data), model_config, train_config, self.tokenizer)
        self.data = data
        self.seq_len = data.seq_len
        self.tokens_per_step = data.nominal_tokens_per_step
        self.total_steps = total_steps(data, train_config)
        if init_from is not None:
            ckpt.check_compatible(init_from, model_config)
        if train_config.eval_tasks:  # an unknown task fails now, not at the first evaluation
            from engine.evaluation.tasks import resolve_task

            for name in train_config.eval_tasks:
                resolve_task(name)
        self.init_from, self.adapter = init_from, adapter
        self.resume_from = resume_from
        # Opened last: a config that fails validation leaves no run folder behind.
        self.events = EventLog(self.run_dir, listener=on_event)

    # -- set-up -----------------------------------------------------------------------------------

    def _build(self) -> int:
        """Create model, optimizer and scheduler; load the resume checkpoint. Returns the first step to run."""
        cfg = self.cfg
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        torch.manual_seed(cfg.seed)
        self.model = Transformer(self.model_config)
        if self.init_from is not None:
            ckpt.load_weights(self.init_from, self.model)
        self.model.to(self.device)
        if self.adapter is not None:
            from engine.adapters.lora import apply_lora, describe_trainable, trainable_summary

            apply_lora(self.model, self.adapter)
            self.events.log(describe_trainable(*trainable_summary(self.model)))
        self.optimizer = build_optimizer(self.model, cfg, self.device.type)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        start, self.tokens_seen = 0, 0
        if self.resume_from is not None:
            checkpoint = ckpt.resolve_checkpoint(self.resume_from, log=self.events.log)
            start = self._restore(checkpoint)
            self.tokens_seen = int(checkpoint.meta.get("tokens_seen", start * self.tokens_per_step))
        return start

    def _restore(self, checkpoint: ckpt.Checkpoint) -> int:
        ckpt.check_compatible(checkpoint, self.model_config)
        if self.adapter is not None:
            from engine.adapters.lora import load_adapter_state

            load_adapter_state(self.model, ckpt.load_tensors(checkpoint), str(checkpoint.path))
        else:
            ckpt.load_weights(checkpoint, self.model)
        state = ckpt.load_training_state(checkpoint)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state.get("scaler", {}))
        except (KeyError, ValueError) as err:
            raise CheckpointError(
                f"checkpoint {checkpoint.path} has incompatible optimizer state ({err})"
            ) from None
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.events.log(f"resumed from {checkpoint.path} at step {checkpoint.step}")
        return checkpoint.step

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        """Train to ``total_steps`` (or until ``should_stop``), checkpointing along the way."""
        try:
            return self._run()
        finally:
            self.events.close()

    def _run(self) -> TrainResult:
        cfg = self.cfg
        start = self._build()
        self.eval_batches = self.data.eval_batches()
        self._write_run_json("running", start)
        self.events.emit(
            "status", status="running", step=start, total_steps=self.total_steps,
            resumed_from=start if self.resume_from is not None else None,
            tokens_per_step=self.tokens_per_step, device=str(self.device), precision=self.precision,
            parameters=self.model.num_parameters(), trainable_parameters=self._trainable(),
            flops_per_token=self.model_config.flops_per_token(self.seq_len),
            model_config=self.model_config.to_dict(), train_config=self.cfg.to_dict(),
            adapter=self.adapter.to_dict() if self.adapter else None,
            init_from=str(self.init_from.path) if self.init_from else None,
        )  # fmt: skip
        self.events.log(
            f"training {self._trainable():,} of {self.model.num_parameters():,} parameters on {self.device} "
            f"({self.precision}), steps {start}→{self.total_steps}, {self.tokens_per_step:,} tokens/step"
        )
        metrics: dict[str, float] = {}
        last: ckpt.Checkpoint | None = None
        status = "completed"
        step = start
        self.model.train()
        while step < self.total_steps:
            started = time.perf_counter()
            loss, tokens = self._train_step(step)
            step += 1
            elapsed = time.perf_counter() - started
            self.tokens_seen += tokens
            metrics.update(loss=loss, lr=self.scheduler.get_last_lr()[0])
            self.events.emit(
                "step", step=step, loss=loss, lr=metrics["lr"], grad_norm=self._grad_norm,
                tokens=self.tokens_seen, tokens_per_s=tokens / elapsed,
                step_time=elapsed, memory=peak_memory_bytes(self.device),
            )  # fmt: skip
            if step % cfg.log_interval == 0 or step == self.total_steps:
                self.events.log(
                    f"step {step}/{self.total_steps} loss {loss:.4f} lr {metrics['lr']:.2e} "
                    f"grad {self._grad_norm:.2f} {tokens / elapsed:,.0f} tok/s"
                )
            stopping = self.should_stop()
            final = step == self.total_steps
            if step % cfg.eval_interval == 0 or final or stopping:
                metrics.update(self.evaluate())
            if self.tokenizer is not None and (step % cfg.sample_interval == 0 or final):
                self._sample(step)
            if step % cfg.attention_interval == 0 or final:
                self._attention_snapshot(step)
            if step % cfg.checkpoint_interval == 0 or final or stopping:
                last = self._save(step, metrics)
            if stopping and not final:
                status = "cancelled"
                self.events.log(
                    f"stopped at step {step}; resume with the checkpoint {last.path if last else ''}"
                )
                break
        self._write_run_json(status, step, metrics)
        self.events.emit("status", status=status, step=step, total_steps=self.total_steps, metrics=metrics)
        return TrainResult(self.run_dir, status, step, self.total_steps, metrics, last.path if last else None)

    def _trainable(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def _on_device(self, batch: Batch) -> Batch:
        return {name: value.to(self.device, non_blocking=True) for name, value in batch.items()}

    def _train_step(self, step: int) -> tuple[float, int]:
        """One optimizer step; returns its loss and the input tokens it read."""
        accum = self.cfg.gradient_accumulation_steps
        total, tokens = 0.0, 0
        for micro in range(accum):
            batch = self.data.batch(step, micro)
            tokens += tokens_in(batch)
            batch = self._on_device(batch)
            with autocast(self.device, self.precision):
                loss = self.forward(batch.pop("input_ids"), **batch).loss / accum
            self.scaler.scale(loss).backward()
            total += loss.item()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip or float("inf"))
        self._grad_norm = float(norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return total, tokens

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss, perplexity and next-token accuracy over the fixed validation batches (target tokens
        only: padding and, in fine-tuning, the prompt are not scored)."""
        if not self.eval_batches:
            return {}
        self.model.eval()
        loss_sum = correct = count = 0.0
        for batch in self.eval_batches:
            batch = self._on_device(batch)
            labels = batch["labels"]
            with autocast(self.device, self.precision):
                out = self.model(batch.pop("input_ids"), **batch)
            scored = labels != IGNORE_INDEX
            targets = int(scored.sum())
            loss_sum += float(out.loss) * targets
            correct += float(((out.logits.argmax(-1) == labels) & scored).sum())
            count += targets
        self.model.train()
        if not count:
            return {}
        val_loss = loss_sum / count
        result: dict[str, float] = {
            "val_loss": val_loss,
            "val_ppl": math.exp(min(val_loss, 50.0)),
            "val_accuracy": correct / count,
        }
        step = self.scheduler.last_epoch
        result |= self._task_scores(step)
        self.events.emit("eval", step=step, **result)
        self.events.log(
            f"eval step {step}: val loss {val_loss:.4f} ppl {result['val_ppl']:.1f} acc {result['val_accuracy']:.3f}"
        )
        return result

    def _task_scores(self, step: int) -> dict[str, float]:
        """The ``eval_tasks`` scores of the model as it is now, as ``task/metric`` (drawn as curves), each task's
        result also recorded as an evaluation of this run."""
        if not self.cfg.eval_tasks or self.tokenizer is None:
            return {}
        from engine.evaluation.requests import ModelScorer
        from engine.evaluation.runner import EvalSettings, run_task
        from engine.evaluation.tasks import resolve_task

        scorer = ModelScorer(self.model, self.tokenizer)
        scores: dict[str, float] = {}
        for name in self.cfg.eval_tasks:
            report = run_task(resolve_task(name), scorer, EvalSettings(limit=self.cfg.eval_task_limit))
            scores |= {f"{report.task}/{s.metric}": s.value for s in report.scores}
            self.events.emit("result", model=str(self.run_dir), step=step, **report.to_dict())
        self.model.train()
        return scores

    def _sample(self, step: int) -> None:
        assert self.tokenizer is not None
        # Fine-tuning data may bring its own prompt, in the chat template: the reply ends at the next turn.
        chat_prompt = getattr(self.data, "sample_prompt", None)
        prompt = chat_prompt or self.cfg.sample_prompt
        params = SamplingParams(
            max_new_tokens=self.cfg.sample_tokens, temperature=0.8, top_k=40, seed=self.cfg.seed,
            stop=list(ROLE_MARKERS.values()) if chat_prompt else [],
        )  # fmt: skip
        rng = torch.get_rng_state()
        result = generate(self.model, self.tokenizer, prompt, params)[0]
        torch.set_rng_state(rng)  # sampling must not change the training run's random stream
        self.model.train()
        self.events.emit("sample", step=step, prompt=prompt, text=prompt + result.text)

    def _attention_snapshot(self, step: int) -> None:
        if self.tokenizer is not None:
            weights, labels = attention_maps.attention_on_text(self.model, self.tokenizer, PROBE_TEXT)
        else:
            probe = (
                self.eval_batches[0]["input_ids"][0]
                if self.eval_batches
                else self.data.batch(0, 0)["input_ids"][0]
            )
            ids = [int(t) for t in probe[: min(attention_maps.MAX_SIDE, self.model_config.max_len)]]
            weights, labels = attention_maps.capture_attention(self.model, ids), [str(i) for i in ids]
        path = self.run_dir / "attention" / f"step-{step:08d}.safetensors"
        attention_maps.save_snapshot(path, weights, labels, step)
        layers, heads = weights.shape[:2]
        self.events.emit("attention", step=step, path=str(path), layers=layers, heads=heads, tokens=labels)

    def _save(self, step: int, metrics: dict[str, float]) -> ckpt.Checkpoint:
        state: dict[str, Any] = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": {"torch": torch.get_rng_state()},
        }
        if self.device.type == "cuda":
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        checkpoints_dir = self.run_dir / "checkpoints"
        meta: dict[str, Any] = {
            "kind": self.kind,
            "train_config": self.cfg.to_dict(),
            "tokens_seen": self.tokens_seen,
            "data_position": {"seed": self.cfg.seed, "step": step},
            "dataset": self.data.source,
            "tokenizer": str(self.tokenizer.path) if self.tokenizer and self.tokenizer.path else None,
            "metrics": dict(metrics),
        }
        tensors = None
        if self.init_from is not None:
            meta["init_from"] = str(self.init_from.path)
        if self.adapter is not None:  # the base is the init checkpoint's: only the adapter is saved
            from engine.adapters.lora import adapter_state

            assert self.init_from is not None
            meta |= {"adapter": self.adapter.to_dict(), "base_sha256": self.init_from.weights_sha256}
            tensors = adapter_state(self.model)
        saved = ckpt.save_checkpoint(
            checkpoints_dir, step=step, model=self.model, tensors=tensors, model_config=self.model_config,
            training_state=state, meta=meta,
        )  # fmt: skip
        is_best = "val_loss" in metrics and ckpt.update_best(checkpoints_dir, saved, metrics["val_loss"])
        ckpt.prune_checkpoints(checkpoints_dir, self.cfg.keep_last)
        self.events.emit("checkpoint", step=step, path=str(saved.path), best=is_best)
        return saved

    def _write_run_json(self, status: str, step: int, metrics: dict[str, float] | None = None) -> None:
        write_json_atomic(
            self.run_dir / "run.json",
            {
                "id": self.run_dir.name,
                "kind": self.kind,
                "status": status,
                "step": step,
                "total_steps": self.total_steps,
                "tokens_per_step": self.tokens_per_step,
                "model_config": self.model_config.to_dict(),
                "train_config": self.cfg.to_dict(),
                "dataset": self.data.source,
                "tokenizer": str(self.tokenizer.path) if self.tokenizer and self.tokenizer.path else None,
                "adapter": self.adapter.to_dict() if self.adapter else None,
                "init_from": str(self.init_from.path) if self.init_from else None,
                "metrics": metrics or {},
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )
