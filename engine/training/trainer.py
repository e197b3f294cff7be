"""Causal-LM pretraining: the loop, validation, samples, events and resumable checkpoints."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.data.binary import TokenDataset
from engine.data.meta import DatasetMeta, check_tokenizer, check_vocab, load_dataset_meta
from engine.device import autocast, peak_memory_bytes, resolve_device, resolve_precision
from engine.errors import CheckpointError, DataError
from engine.fileio import write_json_atomic
from engine.generation import SamplingParams, generate_ids, prompt_ids
from engine.model import ModelConfig, Transformer, attention_maps
from engine.model.attention_maps import PROBE_TEXT
from engine.runs import checkpoint as ckpt
from engine.runs.events import Event, EventLog
from engine.tokenizer import Tokenizer
from engine.training.batches import WindowSampler, evaluation_windows
from engine.training.config import TrainConfig
from engine.training.optim import build_optimizer, build_scheduler


@dataclass
class TrainResult:
    run_dir: Path
    status: str  # "completed" | "cancelled"
    step: int
    total_steps: int
    final_metrics: dict[str, float] = field(default_factory=dict)
    last_checkpoint: Path | None = None


class Trainer:
    """Trains a model on a prepared dataset into ``run_dir``, resuming from ``resume_from`` if given."""

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        data_dir: Path,
        run_dir: Path,
        *,
        tokenizer_path: Path | None = None,
        resume_from: Path | None = None,
        on_event: Callable[[Event], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.model_config, self.cfg = model_config, train_config
        self.data_dir, self.run_dir = Path(data_dir), Path(run_dir)
        self.should_stop = should_stop or (lambda: False)
        self.meta: DatasetMeta = load_dataset_meta(self.data_dir)
        self.tokenizer = Tokenizer.load(tokenizer_path) if tokenizer_path else None
        check_vocab(
            self.meta.vocab_size,
            model_config.vocab_size,
            self.tokenizer.vocab_size if self.tokenizer else None,
            dataset=self.data_dir,
        )
        if self.tokenizer is not None:
            check_tokenizer(self.meta, self.tokenizer.sha256, dataset=self.data_dir)
        self.train_tokens = TokenDataset(self.data_dir / "train").tokens
        self.val_tokens = TokenDataset(self.data_dir / "val").tokens
        self.seq_len = min(train_config.seq_len or model_config.max_len, model_config.max_len)
        if len(self.train_tokens) < self.seq_len + 2:
            raise DataError(
                f"dataset {self.data_dir} has {len(self.train_tokens)} training tokens, fewer than one window of "
                f"{self.seq_len}; add data or lower --seq-len"
            )
        self.tokens_per_step = (
            train_config.batch_size * self.seq_len * train_config.gradient_accumulation_steps
        )
        if train_config.max_steps is not None:
            self.total_steps = train_config.max_steps
        else:
            self.total_steps = max(
                1, math.ceil(train_config.epochs * len(self.train_tokens) / self.tokens_per_step)
            )
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
        self.model = Transformer(self.model_config).to(self.device)
        self.optimizer = build_optimizer(self.model, cfg, self.device.type)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        start = 0
        if self.resume_from is not None:
            start = self._restore(ckpt.resolve_checkpoint(self.resume_from, log=self.events.log))
        return start

    def _restore(self, checkpoint: ckpt.Checkpoint) -> int:
        ckpt.check_compatible(checkpoint, self.model_config)
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
        sampler = WindowSampler(self.train_tokens, self.seq_len, cfg.batch_size, cfg.seed)
        self.eval_batches = evaluation_windows(
            self.val_tokens, self.seq_len, cfg.batch_size, cfg.eval_batches
        )
        self._write_run_json("running", start)
        self.events.emit(
            "status", status="running", step=start, total_steps=self.total_steps,
            resumed_from=start if self.resume_from is not None else None,
            tokens_per_step=self.tokens_per_step, device=str(self.device), precision=self.precision,
            parameters=self.model.num_parameters(), flops_per_token=self.model_config.flops_per_token(self.seq_len),
            model_config=self.model_config.to_dict(), train_config=self.cfg.to_dict(),
        )  # fmt: skip
        self.events.log(
            f"training {self.model.num_parameters():,} parameters on {self.device} ({self.precision}), "
            f"steps {start}→{self.total_steps}, {self.tokens_per_step:,} tokens/step"
        )
        metrics: dict[str, float] = {}
        last: ckpt.Checkpoint | None = None
        status = "completed"
        step = start
        self.model.train()
        while step < self.total_steps:
            started = time.perf_counter()
            loss = self._train_step(sampler, step)
            step += 1
            elapsed = time.perf_counter() - started
            metrics.update(loss=loss, lr=self.scheduler.get_last_lr()[0])
            self.events.emit(
                "step", step=step, loss=loss, lr=metrics["lr"], grad_norm=self._grad_norm,
                tokens=step * self.tokens_per_step, tokens_per_s=self.tokens_per_step / elapsed,
                step_time=elapsed, memory=peak_memory_bytes(self.device),
            )  # fmt: skip
            if step % cfg.log_interval == 0 or step == self.total_steps:
                self.events.log(
                    f"step {step}/{self.total_steps} loss {loss:.4f} lr {metrics['lr']:.2e} "
                    f"grad {self._grad_norm:.2f} {self.tokens_per_step / elapsed:,.0f} tok/s"
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

    def _train_step(self, sampler: WindowSampler, step: int) -> float:
        accum = self.cfg.gradient_accumulation_steps
        total = 0.0
        for micro in range(accum):
            x, y = sampler.batch(step, micro)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with autocast(self.device, self.precision):
                loss = self.forward(x, labels=y).loss / accum
            self.scaler.scale(loss).backward()
            total += loss.item()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip or float("inf"))
        self._grad_norm = float(norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return total

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss, perplexity and next-token accuracy over fixed windows."""
        if not self.eval_batches:
            return {}
        self.model.eval()
        loss_sum = correct = count = 0.0
        for x, y in self.eval_batches:
            x, y = x.to(self.device), y.to(self.device)
            with autocast(self.device, self.precision):
                out = self.model(x, labels=y)
            loss_sum += float(out.loss) * y.numel()
            correct += float((out.logits.argmax(-1) == y).sum())
            count += y.numel()
        self.model.train()
        val_loss = loss_sum / count
        result = {
            "val_loss": val_loss,
            "val_ppl": math.exp(min(val_loss, 50.0)),
            "val_accuracy": correct / count,
        }
        step = self.scheduler.last_epoch
        self.events.emit("eval", step=step, **result)
        self.events.log(
            f"eval step {step}: val loss {val_loss:.4f} ppl {result['val_ppl']:.1f} acc {result['val_accuracy']:.3f}"
        )
        return result

    def _sample(self, step: int) -> None:
        assert self.tokenizer is not None
        prompt = prompt_ids(self.model, self.tokenizer, self.cfg.sample_prompt)
        params = SamplingParams(
            max_new_tokens=min(self.cfg.sample_tokens, self.model_config.max_len - len(prompt)),
            temperature=0.8, top_k=40, seed=self.cfg.seed,
        )  # fmt: skip
        rng = torch.get_rng_state()
        ids = generate_ids(self.model, [prompt], params)[0]
        torch.set_rng_state(rng)  # sampling must not change the training run's random stream
        self.model.train()
        text = self.cfg.sample_prompt + self.tokenizer.decode(ids)
        self.events.emit("sample", step=step, prompt=self.cfg.sample_prompt, text=text)

    def _attention_snapshot(self, step: int) -> None:
        if self.tokenizer is not None:
            weights, labels = attention_maps.attention_on_text(self.model, self.tokenizer, PROBE_TEXT)
        else:
            ids = [int(t) for t in self.val_tokens[: min(attention_maps.MAX_SIDE, self.model_config.max_len)]]
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
        saved = ckpt.save_checkpoint(
            checkpoints_dir, step=step, model=self.model, model_config=self.model_config, training_state=state,
            meta={
                "train_config": self.cfg.to_dict(),
                "tokens_seen": step * self.tokens_per_step,
                "data_position": {"sampler": "random-windows", "seed": self.cfg.seed, "step": step},
                "dataset": str(self.data_dir),
                "tokenizer": str(self.tokenizer.path) if self.tokenizer and self.tokenizer.path else None,
                "metrics": dict(metrics),
            },
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
                "kind": "pretrain",
                "status": status,
                "step": step,
                "total_steps": self.total_steps,
                "tokens_per_step": self.tokens_per_step,
                "model_config": self.model_config.to_dict(),
                "train_config": self.cfg.to_dict(),
                "dataset": str(self.data_dir),
                "tokenizer": str(self.tokenizer.path) if self.tokenizer and self.tokenizer.path else None,
                "metrics": metrics or {},
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )
