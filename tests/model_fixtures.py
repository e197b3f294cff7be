"""Models for equality tests: their outputs depend on the whole context, so a bug that drops context shows.

A freshly initialised model with the default init (0.02) and tied embeddings mostly repeats its last input token
whatever came before it, so a decoder that ignored its KV cache, mixed up rows or mis-masked padding would still
produce the "right" greedy tokens. These models have wide, untied weights instead; tests/test_model_fixtures.py
shows that their greedy output changes when an early prompt token does.
"""

from __future__ import annotations

import torch

from engine.model import ModelConfig, Transformer

CONTEXT_SENSITIVE = {"initializer_range": 0.3, "tie_word_embeddings": False, "dropout": 0.0}


def context_sensitive_model(config: ModelConfig | dict, *, seed: int = 0, **overrides: object) -> Transformer:
    """An eval-mode model of ``config`` (+ ``overrides``) with wide, untied weights."""
    base = config.to_dict() if isinstance(config, ModelConfig) else dict(config)
    torch.manual_seed(seed)
    return Transformer(ModelConfig.from_dict({**base, **CONTEXT_SENSITIVE, **overrides})).eval()
