"""The served model: loaded in the background (the server answers 503 meanwhile), then driven by its batcher."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from engine.errors import LLModelError, NotFoundError

if TYPE_CHECKING:
    from engine.generation.scoring import TokenScore
    from engine.model import Transformer
    from engine.runs.loading import LoadedModel
    from engine.server.batcher import ContinuousBatcher
    from engine.tokenizer import Tokenizer


T = TypeVar("T")


@dataclass
class ServeOptions:
    model_path: Path
    config_path: Path | None = None
    tokenizer_path: Path | None = None
    device: str = "auto"
    max_batch: int = 8
    max_queue: int = 64
    adapters: dict[str, Path] = field(
        default_factory=dict
    )  # name → adapter directory, served beside the base


class ServedModel:
    """Owns the loaded model and its ContinuousBatcher; ``ready`` turns true once both are up."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.loaded: LoadedModel | None = None
        self.batcher: ContinuousBatcher | None = None
        self.adapters: list[str] = []  # served adapter names; adapter i is row index i
        self.error: str | None = None
        self.started = time.time()
        self._ready = threading.Event()

    @property
    def ready(self) -> bool:
        """Loaded, and its batching loop alive (a dead loop turns /health to 503, so the server gets restarted)."""
        return self._ready.is_set() and self.batcher is not None and self.batcher.alive

    @property
    def problem(self) -> str | None:
        """Why the model cannot serve: it failed to load, or its batching loop stopped; None otherwise."""
        if self.error:
            return self.error
        if self.batcher is not None and self.batcher.failure is not None:
            failure = self.batcher.failure
            return f"the batching loop stopped ({type(failure).__name__}: {failure}); restart the server"
        return None

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
            self._install_adapters()
            self.batcher = ContinuousBatcher(
                self.loaded.model, self.loaded.tokenizer, max_batch=o.max_batch, max_queue=o.max_queue
            )
            self.batcher.start()
            self._ready.set()
        except Exception as error:  # reported by /health; the server stays up to say why
            self.error = str(error) or type(error).__name__

    def _install_adapters(self) -> None:
        """Load the adapters of the options (each checked against this base) behind per-row LoRA layers."""
        if not self.options.adapters:
            return
        from engine.adapters.files import check_base, load_adapter
        from engine.adapters.multi_adapter import install

        found = []
        for name, path in self.options.adapters.items():
            adapter = load_adapter(path)
            check_base(adapter, self._loaded.checkpoint)
            found.append(adapter)
            self.adapters.append(name)
        install(self._loaded.model, found)

    def adapter_index(self, model: str | None) -> int:
        """The row index of the OpenAI ``model`` a request names: an adapter's, or the base's (-1).

        A server with no adapters answers to any model name, as it always did; with adapters, a name that is
        neither the base's nor an adapter's is refused (404), so a typo never silently reaches the base.
        """
        from engine.adapters.multi_adapter import BASE

        if model in self.adapters:
            return self.adapters.index(model)
        if not self.adapters or not model or model == self.name:
            return BASE
        shown = repr(model) if len(model) <= 80 else f"{model[:80]!r}… ({len(model):,} characters)"
        raise NotFoundError(
            f"the model {shown} is not served here; choose one of: {', '.join([self.name, *self.adapters])}"
        )

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
    def model(self) -> Transformer:
        return self._loaded.model

    @property
    def tokenizer(self) -> Tokenizer:
        return self._loaded.tokenizer

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
            "adapters": {name: str(self.options.adapters[name]) for name in self.adapters},
        }

    def prompt_ids(self, text: str, *, add_bos: bool = True) -> list[int]:
        """A prompt's token ids, starting with the model's BOS when ``add_bos``; special tokens written in the
        text (``<s>``, ``</s>``) are their ids, as clients of Hugging Face-style servers expect."""
        from engine.generation import prompt_ids

        return prompt_ids(
            self._loaded.model, self._loaded.tokenizer, text, add_bos=add_bos, parse_special=True
        )

    # Forward passes outside generation run on the batcher's thread, the model's one owner (blocking calls).

    def score(self, ids: list[int], top: int = 0, adapter: int = -1) -> list[TokenScore | None]:
        """Each token's log-probability given the ones before it (the first is None), with the ``top`` best,
        under the base model or a served adapter."""
        from engine.adapters.multi_adapter import BASE, rows_use
        from engine.generation.scoring import score_tokens
        from engine.model.decode_layout import plain_products

        def scores() -> list[TokenScore | None]:
            if adapter == BASE:
                return score_tokens(self._loaded.model, ids, top)
            with plain_products(), rows_use([adapter]):
                return score_tokens(self._loaded.model, ids, top)

        return self._on_model(scores)

    def attention(self, text: str) -> dict[str, Any]:
        """Every layer's and head's attention on ``text`` (at most 64x64) with the token labels of both axes."""
        from engine.model.attention_maps import attention_on_text

        weights, tokens = self._on_model(
            lambda: attention_on_text(self._loaded.model, self._loaded.tokenizer, text)
        )
        return {"tokens": tokens, "weights": weights.double().round(decimals=4).tolist()}

    def embed(self, texts: list[str]) -> list[tuple[list[list[float]], list[float]]]:
        """For each text, the final hidden state of every token and their mean as the pooled vector."""
        import torch

        model = self._loaded.model
        prompts = [self.prompt_ids(text)[: model.config.max_len] for text in texts]

        def hidden_states() -> list[torch.Tensor]:  # no autograd: the loop runs under inference mode
            return [
                model(torch.tensor([ids], device=self._loaded.device)).hidden_states[0].float().cpu()
                for ids in prompts
            ]

        return [(h.tolist(), h.mean(0).tolist()) for h in self._on_model(hidden_states)]

    def _on_model(self, work: Callable[[], T]) -> T:
        if self.batcher is None:
            raise LLModelError("the model is not loaded yet")
        return self.batcher.call(work)
