"""The model config: one typed dataclass, plain JSON on disk, presets as data."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.errors import ConfigError
from engine.fileio import write_json_atomic
from engine.typed_config import check_fields

PosType = Literal["rope", "absolute", "sinusoidal", "alibi"]
AttentionType = Literal["standard", "flash", "flash2"]  # flash, flash2: scaled_dot_product_attention
FfnType = Literal["swiglu", "gelu"]
NormType = Literal["rmsnorm", "layernorm"]


@dataclass
class ModelConfig:
    """Every architectural choice of the Transformer; the parameter names are the on-disk JSON keys."""

    vocab_size: int = 32000
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None  # None = n_heads (MHA); fewer = GQA; 1 = MQA
    d_ff: int = 1024
    max_len: int = 512
    dropout: float = 0.0
    pad_token_id: int = 0
    bos_token_id: int = 2
    eos_token_id: int = 3
    use_rope: bool = True
    pos_type: PosType = "rope"
    rope_theta: float = 10000.0
    use_gradient_checkpointing: bool = False
    attention_type: AttentionType = "flash"
    ffn_type: FfnType = "swiglu"
    norm_type: NormType = "rmsnorm"
    norm_first: bool = True
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        self.validate()

    # -- validation -------------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ConfigError (one line) if the config is inconsistent."""
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff", "max_len"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"n_heads={self.n_heads} does not divide d_model={self.d_model}; pick n_heads that divides d_model"
            )
        if self.head_dim % 2 and self.pos_type == "rope":
            raise ConfigError(f"rope needs an even head size, got d_model/n_heads={self.head_dim}")
        if self.n_heads % self.kv_heads:
            raise ConfigError(
                f"n_kv_heads={self.n_kv_heads} does not divide n_heads={self.n_heads}; "
                "use a divisor of n_heads (n_heads for MHA, 1 for MQA)"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.initializer_range <= 0 or self.rms_norm_eps <= 0 or self.rope_theta <= 0:
            raise ConfigError("initializer_range, rms_norm_eps and rope_theta must be positive")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if not 0 <= value < self.vocab_size:
                raise ConfigError(f"{name}={value} is outside the vocabulary (vocab_size={self.vocab_size})")
        if self.use_rope != (self.pos_type == "rope"):
            raise ConfigError(
                f"use_rope={self.use_rope} contradicts pos_type={self.pos_type!r}; set only one of them"
            )

    # -- derived quantities -----------------------------------------------------------------------

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        """The number of key/value heads: ``n_kv_heads``, or ``n_heads`` where it is unset."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    def num_parameters(self, *, include_embeddings: bool = True) -> int:
        """Exact parameter count of the model this config builds (tied weights counted once)."""
        d, L, hd = self.d_model, self.n_layers, self.head_dim
        attn = d * d * 2 + 2 * d * (self.kv_heads * hd)  # q, o + k, v
        ffn = (3 if self.ffn_type == "swiglu" else 2) * d * self.d_ff
        norm = d if self.norm_type == "rmsnorm" else 2 * d
        per_layer = attn + ffn + 2 * norm
        total = L * per_layer + norm  # final norm
        embed = self.vocab_size * d
        if self.pos_type == "absolute":
            embed += self.max_len * d
        head = 0 if self.tie_word_embeddings else self.vocab_size * d
        if include_embeddings:
            return total + embed + head
        # The output projection does real matmul work, so it stays in the count used for FLOPs.
        return total + (self.vocab_size * d)

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (forward + backward), PaLM-style: 6N + 12·L·d·T, input embedding excluded."""
        t = seq_len or self.max_len
        return 6 * self.num_parameters(include_embeddings=False) + 12 * self.n_layers * self.d_model * t

    def estimate_memory(
        self,
        *,
        batch_size: int = 1,
        seq_len: int | None = None,
        bytes_per_param: int = 4,
        training: bool = True,
    ) -> dict[str, int]:
        """Rough memory needs in bytes: weights, gradients, AdamW state and activations."""
        t = seq_len or self.max_len
        n = self.num_parameters()
        weights = n * bytes_per_param
        grads = n * 4 if training else 0
        optimizer = n * 8 if training else 0
        # Per layer and token: ~34·d bytes of saved activations in 16-bit (Korthikanti et al.) plus scores.
        act_per_layer = batch_size * t * (34 * self.d_model + 5 * self.n_heads * t)
        if self.use_gradient_checkpointing:
            act_per_layer = batch_size * t * self.d_model * 2
        activations = (
            (act_per_layer * self.n_layers + batch_size * t * self.vocab_size * 4) if training else 0
        )
        kv_cache = 0 if training else 2 * self.n_layers * batch_size * t * self.kv_heads * self.head_dim * 4
        total = weights + grads + optimizer + activations + kv_cache
        return {
            "weights": weights,
            "gradients": grads,
            "optimizer": optimizer,
            "activations": activations,
            "kv_cache": kv_cache,
            "total": total,
        }

    # -- serialisation ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> ModelConfig:
        """Build a config from a JSON-like dict, rejecting unknown keys and wrong types with one line."""
        data = check_fields(cls, data, source)
        if "use_rope" in data and "pos_type" not in data:
            data["pos_type"] = "rope" if data["use_rope"] else "absolute"
        if "pos_type" in data and "use_rope" not in data:
            data["use_rope"] = data["pos_type"] == "rope"
        try:
            return cls(**data)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        """Read a config JSON file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found; create one with `llmodel create-config`")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from None
        # A training config may nest the model config under "model".
        if isinstance(data, dict) and isinstance(data.get("model"), dict):
            data = data["model"]
        return cls.from_dict(data, source=str(path))

    def save(self, path: str | Path) -> None:
        """Write the config as JSON, atomically."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A preset config (`nano`, `tiny`, `small`, `base`, `large`, `xl`) with optional overrides."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], "name": name, **overrides}, source=f"preset {name}")


# Sizes of the presets; everything not named takes the dataclass default. Heads are 64 wide up to `small` and
# 128 wide above; d_ff is SwiGLU's 8/3 x d_model rounded up to a multiple of 256 (as Llama does); the two largest
# share key/value heads (GQA) to keep their KV caches small.
# The table keeps one preset a row (`fmt: skip`) so that the sizes compare at a glance.
PRESETS: dict[str, dict[str, Any]] = {
    "nano": {"vocab_size": 512, "d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128, "max_len": 128},
    "tiny": {"vocab_size": 32000, "d_model": 512, "n_layers": 8, "n_heads": 8, "d_ff": 1536, "max_len": 512},
    "small": {"vocab_size": 32000, "d_model": 1024, "n_layers": 12, "n_heads": 16, "d_ff": 2816, "max_len": 1024},
    "base": {"vocab_size": 32000, "d_model": 2048, "n_layers": 24, "n_heads": 16, "d_ff": 5632, "max_len": 2048},
    "large": {
        "vocab_size": 32000, "d_model": 2560, "n_layers": 32, "n_heads": 20, "n_kv_heads": 4, "d_ff": 6912,
        "max_len": 2048,
    },
    "xl": {
        "vocab_size": 32000, "d_model": 4096, "n_layers": 64, "n_heads": 32, "n_kv_heads": 8, "d_ff": 11008,
        "max_len": 4096,
    },
}  # fmt: skip
