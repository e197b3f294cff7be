"""The training loop of every run that trains: pretraining and fine-tuning (full, LoRA, QLoRA).

One loop, with validation, samples, events and resumable checkpoints. What differs between runs is given to it:
how the model starts, resumes and is saved (a :class:`engine.training.setup.ModelSetup`: fresh or a checkpoint's
weights, or LoRA layers over a frozen base), what scores it besides the validation loss (evaluators), and what it
reads (a :class:`engine.training.data.TrainingData`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.device import autocast, peak_memory_bytes, resolve_device, resolve_precision
from engine.errors import CheckpointError, ConfigError, DiskFullError
from engine.fileio import format_bytes, free_bytes, tree_bytes, write_json_atomic
from engine.generation import SamplingParams, generate
from engine.model import IGNORE_INDEX, ModelConfig, attention_maps
from engine.model.attention_maps import PROBE_TEXT
from engine.runs import checkpoint as ckpt
from engine.runs.events import Event, EventLog
from engine.tokenizer import ROLE_MARKERS, Tokenizer
from engine.training.config import TrainConfig
from engine.training.data import Batch, TokenStreamData, TrainingData, tokens_in, total_steps
from engine.training.optim import build_optimizer, build_scheduler
from engine.training.setup import Evaluator, FullModel, ModelSetup


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

    ``setup`` builds the model (default: fresh weights, all trained); ``evaluators`` score it at every validation
    (a config's ``eval_tasks`` need one); ``resume_from`` continues a run of this kind from its checkpoint.
    :meth:`run` trains; :meth:`set_up` and :meth:`train_step` drive single steps (the benchmark's).
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
        setup: ModelSetup | None = None,
        evaluators: Sequence[Evaluator] = (),
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
        self.setup = setup or FullModel()
        self.setup.check(model_config)
        if train_config.eval_tasks and not evaluators:
            raise ConfigError(
                f"eval_tasks {', '.join(train_config.eval_tasks)} need an evaluator; build the trainer with "
                "evaluators=task_evaluators(train_config, run_dir) (engine.evaluation.in_training)"
            )
        self.evaluators = list(evaluators)
        self.resume_from = resume_from
        # Opened last: a config that fails validation leaves no run folder behind.
        self.events = EventLog(self.run_dir, listener=on_event)

    # -- set-up -----------------------------------------------------------------------------------

    def set_up(self) -> int:
        """Create model, optimizer and scheduler; load the resume checkpoint. Returns the first step to run, with
        the model in training mode."""
        cfg = self.cfg
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        torch.manual_seed(cfg.seed)
        self.model = self.setup.build(self.model_config, self.device, self.events.log)
        self.optimizer = build_optimizer(self.model, cfg, self.device.type)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        start, self.tokens_seen = 0, 0
        if self.resume_from is not None:
            checkpoint = ckpt.resolve_checkpoint(self.resume_from, log=self.events.log)
            start = self._restore(checkpoint)
            self.tokens_seen = int(checkpoint.meta.get("tokens_seen", start * self.tokens_per_step))
        self.model.train()
        return start

    def _restore(self, checkpoint: ckpt.Checkpoint) -> int:
        ckpt.check_compatible(checkpoint, self.model_config)
        self.setup.restore(self.model, checkpoint)
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
        """Train to ``total_steps`` (or until ``should_stop``), checkpointing along the way; a full disk, whatever
        was being written, says where the run can go on from."""
        try:
            return self._run()
        except DiskFullError as error:
            last_good = ckpt.last_good_description(self.run_dir / "checkpoints")
            resume = f"free space, then `llmodel runs resume {self.run_dir.name}`"
            raise error.with_last_good(f"{last_good}; {resume}") from None
        finally:
            self.close()

    def close(self) -> None:
        """Close the run's event log (:meth:`run` does; a caller of :meth:`train_step` must)."""
        self.events.close()

    def _run(self) -> TrainResult:
        cfg = self.cfg
        start = self.set_up()
        self.eval_batches = self.data.eval_batches()
        self._write_run_json("running", start)
        self.events.emit(
            "status",
            status="running",
            step=start,
            total_steps=self.total_steps,
            resumed_from=start if self.resume_from is not None else None,
            tokens_per_step=self.tokens_per_step,
            device=str(self.device),
            precision=self.precision,
            parameters=self.model.num_parameters(),
            trainable_parameters=self._trainable(),
            flops_per_token=self.model_config.flops_per_token(self.seq_len),
            model_config=self.model_config.to_dict(),
            train_config=self.cfg.to_dict(),
            **self.setup.describe(),
        )
        self._warn_when_checkpoints_will_not_fit()
        self.events.log(
            f"training {self._trainable():,} of {self.model.num_parameters():,} parameters on {self.device} "
            f"({self.precision}), steps {start}→{self.total_steps}, {self.tokens_per_step:,} tokens/step"
        )
        metrics: dict[str, float] = {}
        last: ckpt.Checkpoint | None = None
        status = "completed"
        step = start
        while step < self.total_steps:
            started = time.perf_counter()
            loss, tokens = self.train_step(step)
            step += 1
            elapsed = time.perf_counter() - started
            self.tokens_seen += tokens
            metrics.update(loss=loss, lr=float(self.scheduler.get_last_lr()[0]))
            self.events.emit(
                "step",
                step=step,
                loss=loss,
                lr=metrics["lr"],
                grad_norm=self._grad_norm,
                tokens=self.tokens_seen,
                tokens_per_s=tokens / elapsed,
                step_time=elapsed,
                memory=peak_memory_bytes(self.device),
            )
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

    def _warn_when_checkpoints_will_not_fit(self) -> None:
        """A warning before the first step when the disk cannot hold the checkpoints the run keeps (``keep_last``
        and the one being written) beside those it has."""
        tensors, _ = self.setup.saved(self.model)
        each = ckpt.estimate_checkpoint_bytes(self.model, tensors)
        checkpoints_dir = self.run_dir / "checkpoints"
        needed = (self.cfg.keep_last + 1) * each - tree_bytes(checkpoints_dir)
        free = free_bytes(self.run_dir)
        if needed > free:
            self.events.log(
                f"{self.run_dir} has {format_bytes(free)} free but its checkpoints need about "
                f"{format_bytes(needed)} more ({self.cfg.keep_last} kept + 1 being written, "
                f"{format_bytes(each)} each); free space or lower keep_last (--train-config) before a checkpoint fails",
                level="warning",
            )

    def _trainable(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def _on_device(self, batch: Batch) -> Batch:
        return {name: value.to(self.device, non_blocking=True) for name, value in batch.items()}

    def train_step(self, step: int) -> tuple[float, int]:
        """One optimizer step on the batches of ``step`` (after :meth:`set_up`); returns its loss and the input
        tokens it read."""
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
        for evaluator in self.evaluators:
            result |= evaluator(self.model, self.tokenizer, step, self.events)
            self.model.train()
        self.events.emit("eval", step=step, **result)
        self.events.log(
            f"eval step {step}: val loss {val_loss:.4f} ppl {result['val_ppl']:.1f} acc {result['val_accuracy']:.3f}"
        )
        return result

    def _sample(self, step: int) -> None:
        assert self.tokenizer is not None
        # Fine-tuning data may bring its own prompt, in the chat template: the reply ends at the next turn.
        chat_prompt = getattr(self.data, "sample_prompt", None)
        prompt = chat_prompt or self.cfg.sample_prompt
        params = SamplingParams(
            max_new_tokens=self.cfg.sample_tokens,
            temperature=0.8,
            top_k=40,
            seed=self.cfg.seed,
            stop=list(ROLE_MARKERS.values()) if chat_prompt else [],
        )
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
        tensors, setup_meta = self.setup.saved(self.model)
        meta |= setup_meta
        saved = ckpt.save_checkpoint(
            checkpoints_dir,
            step=step,
            model=self.model,
            tensors=tensors,
            model_config=self.model_config,
            training_state=state,
            meta=meta,
        )
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
                **self.setup.describe(),
                "metrics": metrics or {},
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )
