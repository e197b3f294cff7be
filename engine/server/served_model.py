"""The served model: loaded in the background (the server answers 503 meanwhile), then driven by its batcher."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import LLModelError

if TYPE_CHECKING:
    from engine.generation.scoring import TokenScore
    from engine.runs.loading import LoadedModel
    from engine.server.batcher import ContinuousBatcher


@dataclass
class ServeOptions:
    model_path: Path
    config_path: Path | None = None
    tokenizer_path: Path | None = None
    device: str = "auto"
    max_batch: int = 8
    max_queue: int = 64


class ServedModel:
    """Owns the loaded model and its ContinuousBatcher; ``ready`` turns true once both are up."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.loaded: LoadedModel | None = None
        self.batcher: ContinuousBatcher | None = None
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
        from engine.runs.loading import load_for_inference
        from engine.server.batcher import ContinuousBatcher

        try:
            o = self.options
            self.loaded = load_for_inference(
                o.model_path, config_path=o.config_path, tokenizer_path=o.tokenizer_path, device=o.device
            )
            self.batcher = ContinuousBatcher(
                self.loaded.model, self.loaded.tokenizer, max_batch=o.max_batch, max_queue=o.max_queue
            )
            self.batcher.start()
            self._ready.set()
        except Exception as error:  # reported by /health; the server stays up to say why
            self.error = str(error) or type(error).__name__

    def start_loading(self) -> None:
        threading.Thread(target=self.load, name="model-loader", daemon=True).start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.stop()

    @property
    def max_len(self) -> int:
        return self._loaded.model.config.max_len

    @property
    def _loaded(self) -> LoadedModel:
        if self.loaded is None:
            raise LLModelError("the model is not loaded yet")
        return self.loaded

    def info(self) -> dict[str, Any]:
        """Config, parameter count, tokenizer and checkpoint of the served model."""
        loaded = self._loaded
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

    def prompt_ids(self, text: str, *, add_bos: bool = True) -> list[int]:
        """A prompt's token ids, starting with the model's BOS when ``add_bos``."""
        from engine.generation import prompt_ids

        return prompt_ids(self._loaded.model, self._loaded.tokenizer, text, add_bos=add_bos)

    def score(self, ids: list[int], top: int = 0) -> list[TokenScore | None]:
        """Each token's log-probability given the ones before it (the first is None), with the ``top`` best."""
        from engine.generation.scoring import score_tokens

        return score_tokens(self._loaded.model, ids, top)

    def attention(self, text: str) -> dict[str, Any]:
        """Every layer's and head's attention on ``text`` (at most 64x64) with the token labels of both axes."""
        from engine.model.attention_maps import attention_on_text

        weights, tokens = attention_on_text(self._loaded.model, self._loaded.tokenizer, text)
        return {"tokens": tokens, "weights": weights.double().round(decimals=4).tolist()}

    def embed(self, text: str) -> tuple[list[list[float]], list[float]]:
        """Final hidden state of every token, and their mean as the pooled vector."""
        import torch

        model = self._loaded.model
        ids = self.prompt_ids(text)[: model.config.max_len]
        with torch.inference_mode():
            hidden = model(torch.tensor([ids], device=self._loaded.device)).hidden_states[0].float()
        return hidden.tolist(), hidden.mean(0).tolist()
