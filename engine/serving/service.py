"""The served model: loaded in the background (the server answers 503 meanwhile), then driven by the batcher."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from engine.inference import LoadedModel, load_for_inference


@dataclass
class ServeOptions:
    model_path: Path
    config_path: Path | None = None
    tokenizer_path: Path | None = None
    device: str = "auto"
    max_batch: int = 8
    max_queue: int = 64


class ModelService:
    """Owns the loaded model and its ContinuousBatcher; ``ready`` turns true once both are up."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.loaded: LoadedModel | None = None
        self.batcher: Any = None
        self.error: str | None = None
        self.started = time.time()
        self._ready = threading.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def name(self) -> str:
        """The model id clients use: the run folder's name (or the checkpoint's, if it is not in a run)."""
        path = self.options.model_path.resolve()
        return path.parent.parent.name if path.name.startswith("step-") else path.name

    def load(self) -> None:
        """Load synchronously (tests, and the thread started by :meth:`start_loading`)."""
        from engine.serving.batcher import ContinuousBatcher

        try:
            o = self.options
            self.loaded = load_for_inference(o.model_path, config_path=o.config_path, tokenizer_path=o.tokenizer_path, device=o.device)
            self.batcher = ContinuousBatcher(self.loaded.model, self.loaded.tokenizer, max_batch=o.max_batch, max_queue=o.max_queue)
            self.batcher.start()
            self._ready.set()
        except Exception as error:  # reported by /health; the server stays up to say why
            self.error = f"{type(error).__name__}: {error}" if not str(error) else str(error)

    def start_loading(self) -> None:
        threading.Thread(target=self.load, name="model-loader", daemon=True).start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.stop()

    def info(self) -> dict[str, Any]:
        """Config, parameter count, tokenizer and checkpoint of the served model."""
        assert self.loaded is not None
        loaded = self.loaded
        config = loaded.model.config
        return {
            "id": self.name,
            "config": config.to_dict(),
            "parameters": loaded.model.num_parameters(),
            "max_model_len": config.max_len,
            "device": str(loaded.device),
            "tokenizer": {"path": str(loaded.tokenizer.path), "vocab_size": loaded.tokenizer.vocab_size},
            "checkpoint": {"path": str(loaded.checkpoint.path), "step": loaded.checkpoint.step},
        }

    @torch.inference_mode()
    def score(self, ids: list[int], top: int = 0) -> tuple[list[float | None], list[dict[int, float] | None]]:
        """Log-probability of each token given the ones before it (the first is None), and the ``top`` best."""
        assert self.loaded is not None
        model = self.loaded.model
        logits = model(torch.tensor([ids], device=self.loaded.device)).logits[0].float()
        logprobs = F.log_softmax(logits, dim=-1)
        chosen: list[float | None] = [None]
        best: list[dict[int, float] | None] = [None]
        for position in range(1, len(ids)):
            row = logprobs[position - 1]
            chosen.append(float(row[ids[position]]))
            if top:
                values, indices = torch.topk(row, top)
                best.append({int(i): float(v) for v, i in zip(values, indices, strict=True)})
            else:
                best.append(None)
        return chosen, best

    @torch.inference_mode()
    def attention(self, text: str) -> dict[str, Any]:
        """Every layer's and head's attention on ``text`` (at most 64x64) with the token labels of both axes."""
        from engine.training.attention import attention_on_text

        assert self.loaded is not None
        weights, tokens = attention_on_text(self.loaded.model, self.loaded.tokenizer, text)
        return {"tokens": tokens, "weights": weights.round(decimals=4).tolist()}

    def embed(self, text: str) -> tuple[list[list[float]], list[float]]:
        """Final hidden state of every token, and their mean as the pooled vector."""
        assert self.loaded is not None
        ids = self.loaded.tokenizer.encode(text, add_bos=True)[: self.loaded.model.config.max_len]
        hidden = self.loaded.model(torch.tensor([ids], device=self.loaded.device)).hidden_states[0].float()
        return hidden.tolist(), hidden.mean(0).tolist()
