"""LoRA settings and the projection names an adapter can target. Torch-free, so the workbench can read them."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field

from engine.errors import ConfigError

ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_TARGETS = ("gate_proj", "up_proj", "down_proj")
ALL_LINEAR = "all-linear"


@dataclass
class LoraSettings:
    """What the adapter adapts and how: rank, alpha (the update is scaled by alpha / rank), dropout, targets."""

    rank: int = 16
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    quantize_base: str | None = None  # "nf4" for QLoRA

    def __post_init__(self) -> None:
        if self.rank <= 0:
            raise ConfigError(f"LoRA rank must be a positive integer, got {self.rank}")
        if self.alpha <= 0:
            raise ConfigError(f"LoRA alpha must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        if self.quantize_base not in (None, "nf4"):
            raise ConfigError(f"unknown base quantization {self.quantize_base!r}; use nf4 (QLoRA) or none")
        if not self.target_modules:
            raise ConfigError("name at least one target module, e.g. q_proj,v_proj or all-linear")

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def target_names(targets: Collection[str], present: Collection[str] | None = None) -> list[str]:
    """The projections ``targets`` names: ``all-linear`` is every projection (of those ``present`` in a model,
    when given: a GELU feed-forward has no ``gate_proj``); other names are checked, and must be ``present``."""
    available = (*ATTENTION_TARGETS, *MLP_TARGETS)
    if not targets:
        raise ConfigError("name at least one target module, e.g. q_proj,v_proj or all-linear")
    if ALL_LINEAR in targets:
        return [name for name in available if present is None or name in present]
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise ConfigError(
            f"unknown target module {unknown[0]!r}; choose from {', '.join(available)} or {ALL_LINEAR}"
        )
    missing = [t for t in targets if t not in present] if present is not None else []
    if missing and present is not None:
        raise ConfigError(
            f"this model has no {missing[0]}; choose from {', '.join(n for n in available if n in present)}"
        )
    return list(dict.fromkeys(targets))
