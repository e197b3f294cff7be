"""Checkpoints: atomic directories of safetensors weights plus training state, with latest/best pointers.

A checkpoint directory counts only once its ``COMPLETE`` marker exists and its file hashes match; the
directory is written under a temporary name and renamed into place, and one being deleted is renamed away first,
so a kill never leaves a ``step-*`` directory that is not whole. A full disk removes the temporary directory and
raises :class:`~engine.errors.DiskFullError` naming the space needed and the last good checkpoint.
torch loads only when weights or training state are written or read: finding and verifying checkpoints (which the
engine process does under its supervisor lock) stays light.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import CheckpointError
from engine.fileio import disk_full, fsync_dir, out_of_space, tree_bytes, write_json_atomic
from engine.model.config import ModelConfig

if TYPE_CHECKING:
    from torch import nn

WEIGHTS = "model.safetensors"
STATE = "training_state.pt"
META = "meta.json"
MARKER = "COMPLETE"
# Fields that change the weights' shapes or meaning; a checkpoint only loads into a config that agrees on them.
ARCHITECTURE_KEYS = (
    "vocab_size",
    "d_model",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "d_ff",
    "max_len",
    "pos_type",
    "ffn_type",
    "norm_type",
    "norm_first",
    "tie_word_embeddings",
)


@dataclass
class Checkpoint:
    """A complete checkpoint on disk."""

    path: Path
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.meta["model_config"], source=f"{self.path}/{META}")

    @property
    def weights_sha256(self) -> str:
        """The sha256 of the weights file, as the meta records it (what an adapter trained on it is bound to)."""
        digest = self.meta.get("files", {}).get(WEIGHTS)
        if not digest:
            raise CheckpointError(f"checkpoint {self.path} records no hash of its weights; save it again")
        return str(digest)


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    checkpoints_dir: Path,
    *,
    step: int,
    model: nn.Module,
    model_config: ModelConfig,
    tensors: dict[str, Any] | None = None,
    training_state: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> Checkpoint:
    """Write ``checkpoints_dir/step-N`` atomically and point ``latest`` at it.

    The weights file holds the model's state, or only ``tensors`` when given (a LoRA run saves its adapter; its
    base is the checkpoint its meta names).
    """
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoints_dir / step_dir_name(step)
    tmp = checkpoints_dir / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        full_meta = _write_files(tmp, step, model, model_config, tensors, training_state, meta)
    except Exception as error:
        written = tree_bytes(tmp)
        needed = max(
            written, estimate_checkpoint_bytes(model, tensors, with_state=training_state is not None)
        )
        full = out_of_space(error, tmp, needed - written)
        shutil.rmtree(tmp, ignore_errors=True)
        if not full:
            raise
        raise disk_full(final, needed, last_good_description(checkpoints_dir)) from None
    if final.exists():
        _discard(final)
    os.replace(tmp, final)
    fsync_dir(checkpoints_dir)
    write_json_atomic(checkpoints_dir / "latest", {"checkpoint": final.name, "step": step})
    return Checkpoint(final, full_meta)


def _write_files(
    tmp: Path,
    step: int,
    model: nn.Module,
    model_config: ModelConfig,
    tensors: dict[str, Any] | None,
    training_state: dict[str, Any] | None,
    meta: dict[str, Any] | None,
) -> dict[str, Any]:
    """The checkpoint's files in ``tmp``, synced, the marker last; returns the meta written."""
    import torch
    from safetensors.torch import save_file, save_model

    if tensors is None:
        save_model(model, str(tmp / WEIGHTS))
    else:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / WEIGHTS))
    files = [WEIGHTS]
    if training_state is not None:
        torch.save(training_state, tmp / STATE)
        files.append(STATE)
    full_meta = {
        "step": step,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model_config": model_config.to_dict(),
        **(meta or {}),
        "files": {name: _sha256(tmp / name) for name in files},
    }
    write_json_atomic(tmp / META, full_meta)
    for name in files:
        with open(tmp / name, "rb") as fh:
            os.fsync(fh.fileno())
    with open(tmp / MARKER, "w", encoding="utf-8") as fh:
        fh.write(str(step))
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(tmp)
    return full_meta


def estimate_checkpoint_bytes(
    model: nn.Module, tensors: dict[str, Any] | None = None, *, with_state: bool = True
) -> int:
    """About how many bytes one checkpoint of ``model`` takes: its weights (or ``tensors``) and, with the
    training state, AdamW's two fp32 moments per trainable parameter."""
    weights = tensors if tensors is not None else model.state_dict()
    size = sum(t.numel() * t.element_size() for t in weights.values())
    if with_state:
        size += sum(2 * 4 * p.numel() for p in model.parameters() if p.requires_grad)
    return size


def last_good_description(checkpoints_dir: Path) -> str:
    """Where a run can go on from: its newest complete checkpoint, or that it has none yet."""
    newest = latest_checkpoint(checkpoints_dir)
    if newest is None:
        return f"no checkpoint in {checkpoints_dir} is complete yet"
    return f"the last good checkpoint is {newest.path}"


def _discard(path: Path) -> None:
    """Delete a checkpoint directory: renamed out of the ``step-*`` names first, so a kill half-way through
    leaves only a temporary for the next prune to clear."""
    doomed = path.parent / f".deleting-{path.name}-{os.getpid()}"
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def verify_checkpoint(path: Path) -> Checkpoint:
    """Return the checkpoint at ``path`` or raise CheckpointError saying what is wrong with it."""
    if not (path / MARKER).is_file():
        raise CheckpointError(
            f"checkpoint {path} is incomplete (no {MARKER} marker); it was interrupted while saving"
        )
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {path} has an unreadable {META}: {err}") from None
    for name, digest in meta.get("files", {}).items():
        file = path / name
        if not file.is_file() or _sha256(file) != digest:
            raise CheckpointError(f"checkpoint {path} is corrupt: {name} does not match its recorded hash")
    return Checkpoint(path, meta)


def list_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """Checkpoint directories (complete or not) in step order."""
    if not checkpoints_dir.is_dir():
        return []
    return sorted(p for p in checkpoints_dir.iterdir() if p.is_dir() and p.name.startswith("step-"))


def latest_checkpoint(
    checkpoints_dir: Path, *, log: Callable[[str], None] | None = None
) -> Checkpoint | None:
    """The newest checkpoint that verifies; corrupt or partial ones are skipped with a message."""
    for path in reversed(list_checkpoints(checkpoints_dir)):
        try:
            return verify_checkpoint(path)
        except CheckpointError as err:
            if log:
                log(f"{err}; using the previous checkpoint")
    return None


def resolve_checkpoint(path: str | Path, *, log: Callable[[str], None] | None = None) -> Checkpoint:
    """Accept a checkpoint directory, a run's ``checkpoints`` directory or a run directory."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"checkpoint path {path} does not exist; pass a run directory or a checkpoint directory"
        )
    if (path / META).is_file() or (path / MARKER).is_file() or path.name.startswith("step-"):
        try:
            return verify_checkpoint(path)
        except CheckpointError as err:
            fallback = latest_checkpoint(path.parent, log=None)
            if fallback is None or fallback.step >= _step_of(path):
                raise
            if log:
                log(f"{err}; using {fallback.path.name} instead")
            return fallback
    for candidate in (path / "checkpoints", path):
        found = latest_checkpoint(candidate, log=log)
        if found is not None:
            return found
    raise CheckpointError(
        f"no complete checkpoint found in {path}; train first or pass a checkpoint directory"
    )


def _step_of(path: Path) -> int:
    try:
        return int(path.name.split("-", 1)[1])
    except (IndexError, ValueError):
        return 1 << 62


def check_compatible(checkpoint: Checkpoint, config: ModelConfig) -> None:
    """Raise CheckpointError when ``config`` would not fit the checkpoint's weights."""
    saved = checkpoint.meta.get("model_config", {})
    for key in ARCHITECTURE_KEYS:
        if key in saved and saved[key] != getattr(config, key):
            raise CheckpointError(
                f"checkpoint {checkpoint.path} was trained with {key}={saved[key]!r} but the config has "
                f"{key}={getattr(config, key)!r}; use the checkpoint's own config (omit --config)"
            )


def load_weights(checkpoint: Checkpoint, model: nn.Module) -> None:
    """Load safetensors weights into ``model`` (strict: every tensor must match)."""
    from safetensors.torch import load_model

    try:
        missing, unexpected = load_model(model, str(checkpoint.path / WEIGHTS), strict=False)
    except RuntimeError as error:  # a tensor of another shape: the first line names it
        first = str(error).strip().splitlines()
        detail = next((line.strip() for line in first if "shape" in line), first[0] if first else "")
        raise CheckpointError(
            f"checkpoint {checkpoint.path} does not fit the model: {detail[:300]}"
        ) from None
    if missing or unexpected:
        names = ", ".join(sorted(missing or unexpected)[:3])
        raise CheckpointError(
            f"checkpoint {checkpoint.path} does not fit the model: {'missing' if missing else 'unexpected'} {names}"
        )


def load_tensors(checkpoint: Checkpoint) -> dict[str, Any]:
    """The checkpoint's weights file as a name → tensor dict (what a LoRA run saved)."""
    from safetensors.torch import load_file

    return load_file(str(checkpoint.path / WEIGHTS))


def load_training_state(checkpoint: Checkpoint) -> dict[str, Any]:
    """The optimizer, scheduler and RNG state, loaded without unpickling arbitrary objects."""
    path = checkpoint.path / STATE
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {checkpoint.path} has no training state; it can be used for inference only"
        )
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def prune_checkpoints(checkpoints_dir: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` checkpoints, never the best one; clear stale temporaries."""
    best = read_pointer(checkpoints_dir, "best")
    complete = [p for p in list_checkpoints(checkpoints_dir) if (p / MARKER).is_file()]
    for path in complete[:-keep_last]:
        if best is None or path.name != best.get("checkpoint"):
            _discard(path)
    for stale in (*checkpoints_dir.glob(".tmp-step-*"), *checkpoints_dir.glob(".deleting-step-*")):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid != str(os.getpid()):  # one trainer writes a run's checkpoints: another pid's are leftovers
            shutil.rmtree(stale, ignore_errors=True)


def read_pointer(checkpoints_dir: Path, name: str) -> dict[str, Any] | None:
    """Read the ``latest`` or ``best`` pointer file, if present."""
    try:
        return json.loads((checkpoints_dir / name).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def update_best(checkpoints_dir: Path, checkpoint: Checkpoint, val_loss: float) -> bool:
    """Point ``best`` at ``checkpoint`` if its validation loss is the lowest so far."""
    best = read_pointer(checkpoints_dir, "best")
    if (
        best is not None
        and best.get("val_loss", float("inf")) <= val_loss
        and (checkpoints_dir / best["checkpoint"]).is_dir()
    ):
        return False
    write_json_atomic(
        checkpoints_dir / "best",
        {"checkpoint": checkpoint.path.name, "step": checkpoint.step, "val_loss": val_loss},
    )
    return True
