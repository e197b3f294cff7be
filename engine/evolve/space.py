"""Search spaces: which training settings and architecture choices a study varies, and over what values.

A space file (YAML or JSON) maps parameter names to Optuna distributions::

    learning_rate: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
    n_layers: {type: int, low: 1, high: 4}
    ffn_type: {type: categorical, choices: [swiglu, gelu]}
    fixed: {d_model: 64}           # settings every trial shares (optional)

Training parameters are :class:`TrainConfig` fields; architecture parameters are :class:`ModelConfig` fields plus
``d_ff_ratio`` (d_ff = ratio x d_model). A trial whose architecture is invalid (heads not dividing d_model, KV
heads not dividing heads) or over the parameter budget never reaches training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.fileio import read_mapping

TRAIN_PARAMS = {
    "learning_rate",
    "warmup_steps",
    "batch_size",
    "weight_decay",
    "optimizer",
    "schedule",
    "grad_clip",
    "min_lr_ratio",
    "beta2",
}
MODEL_PARAMS = {
    "d_model",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "d_ff",
    "d_ff_ratio",
    "ffn_type",
    "norm_type",
    "pos_type",
    "tie_word_embeddings",
    "dropout",
    "norm_first",
}
DISTRIBUTION_KEYS = {"type", "low", "high", "log", "step", "choices"}

HPO: dict[str, dict[str, Any]] = {
    "learning_rate": {"type": "float", "low": 3e-4, "high": 1e-2, "log": True},
    "warmup_steps": {"type": "int", "low": 0, "high": 20},
    "batch_size": {"type": "categorical", "choices": [4, 8, 16]},
    "weight_decay": {"type": "float", "low": 0.0, "high": 0.2},
    "optimizer": {"type": "categorical", "choices": ["adamw", "lion"]},
    "schedule": {"type": "categorical", "choices": ["cosine", "linear", "constant"]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.2},
    "grad_clip": {"type": "float", "low": 0.5, "high": 2.0},
}
NAS: dict[str, dict[str, Any]] = {
    "d_model": {"type": "categorical", "choices": [32, 64, 96, 128]},
    "n_layers": {"type": "int", "low": 1, "high": 4},
    "n_heads": {"type": "categorical", "choices": [2, 4, 8]},
    "n_kv_heads": {"type": "categorical", "choices": [1, 2, 4]},  # GQA/MQA; more than n_heads is rejected
    "d_ff_ratio": {"type": "categorical", "choices": [2.0, 2.67, 4.0]},
    "ffn_type": {"type": "categorical", "choices": ["swiglu", "gelu"]},
    "norm_type": {"type": "categorical", "choices": ["rmsnorm", "layernorm"]},
    "pos_type": {"type": "categorical", "choices": ["rope", "alibi", "absolute"]},
    "tie_word_embeddings": {"type": "categorical", "choices": [True, False]},
}
BUILTIN = {"hpo": HPO, "nas": NAS, "both": {**HPO, **NAS}}


@dataclass
class SearchSpace:
    """Parameter name → distribution spec, plus settings every trial shares."""

    params: dict[str, dict[str, Any]]
    fixed: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.params:
            raise ConfigError("the search space is empty; give at least one parameter to vary")
        for name, spec in self.params.items():
            check_parameter(name, spec)
        for name in self.fixed:
            if name not in TRAIN_PARAMS | MODEL_PARAMS | {"seq_len", "vocab_size", "max_len"}:
                raise ConfigError(f"unknown fixed setting {name!r} in the search space")
        clash = sorted(set(self.params) & set(self.fixed))
        if clash:
            raise ConfigError(f"{clash[0]!r} is both varied and fixed in the search space; keep one")

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "fixed": self.fixed}

    def distributions(self) -> dict[str, Any]:
        """The Optuna distribution of every parameter."""
        import optuna

        out: dict[str, Any] = {}
        for name, spec in self.params.items():
            kind = spec["type"]
            if kind == "float":
                out[name] = optuna.distributions.FloatDistribution(
                    spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step")
                )
            elif kind == "int":
                out[name] = optuna.distributions.IntDistribution(
                    spec["low"], spec["high"], log=spec.get("log", False), step=spec.get("step", 1)
                )
            else:
                out[name] = optuna.distributions.CategoricalDistribution(list(spec["choices"]))
        return out

    def split(self, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A trial's values (fixed settings included) as (model config overrides, training overrides)."""
        merged = {**self.fixed, **values}
        model = {k: v for k, v in merged.items() if k in MODEL_PARAMS | {"vocab_size", "max_len"}}
        train = {k: v for k, v in merged.items() if k in TRAIN_PARAMS | {"seq_len"}}
        if "pos_type" in model:
            model["use_rope"] = model["pos_type"] == "rope"
        ratio = model.pop("d_ff_ratio", None)
        if ratio is not None:
            width = model.get("d_model", 64)
            model["d_ff"] = max(8, int(math.ceil(ratio * width / 8) * 8))
        return model, train


def check_parameter(name: str, spec: Any) -> None:
    """One line naming what is wrong with a parameter's spec."""
    if name not in TRAIN_PARAMS | MODEL_PARAMS:
        known = ", ".join(sorted(TRAIN_PARAMS | MODEL_PARAMS))
        raise ConfigError(f"unknown search parameter {name!r}; choose from {known}")
    if not isinstance(spec, dict) or spec.get("type") not in ("float", "int", "categorical"):
        raise ConfigError(f"search parameter {name}: give type float, int or categorical")
    unknown = sorted(set(spec) - DISTRIBUTION_KEYS)
    if unknown:
        raise ConfigError(f"search parameter {name}: unknown key {unknown[0]!r}")
    if spec["type"] == "categorical":
        if not isinstance(spec.get("choices"), list) or not spec["choices"]:
            raise ConfigError(f"search parameter {name}: a categorical needs a non-empty 'choices' list")
        return
    low, high = spec.get("low"), spec.get("high")
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        raise ConfigError(f"search parameter {name}: give numeric 'low' and 'high'")
    if low > high:
        raise ConfigError(f"search parameter {name}: low {low} is above high {high}, an empty range")
    if spec.get("log") and low <= 0:
        raise ConfigError(f"search parameter {name}: a log scale needs low > 0, got {low}")


def load_space(name_or_path: str) -> SearchSpace:
    """A built-in space (``hpo``, ``nas``, ``both``) or a YAML/JSON space file."""
    if name_or_path in BUILTIN:
        return SearchSpace(dict(BUILTIN[name_or_path]))
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(f"no search space {name_or_path!r}: use hpo, nas, both, or a YAML/JSON space file")
    data = read_mapping(path, "space file", ConfigError)
    fixed = data.pop("fixed", {}) or {}
    if not isinstance(fixed, dict):
        raise ConfigError(f"{path}: 'fixed' maps settings to values")
    return SearchSpace(data, fixed)
