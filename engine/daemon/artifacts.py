"""Registering what a workspace holds on disk (configs, tokenizers, datasets) in its catalog."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from engine.catalog import Catalog


def register_artifacts(catalog: Catalog, workspace: Path, extra: Iterable[Path] = ()) -> int:
    """Record every config, tokenizer, dataset and adapter under ``workspace`` plus ``extra`` paths; returns the count.

    Files made without the engine (``create-config``, a copied tokenizer) are picked up the same way as job output.
    """
    candidates = [
        *sorted((workspace / "configs").glob("*.json")),
        *sorted((workspace / "tokenizers").glob("*/")),
        *sorted((workspace / "datasets").glob("*/")),
        *sorted((workspace / "adapters").glob("*/")),
        *extra,
    ]
    return sum(1 for path in candidates if register_path(catalog, Path(path)))


def register_path(catalog: Catalog, path: Path) -> bool:
    """Register one config file, tokenizer directory or dataset directory; False if it is none of these."""
    try:
        if path.is_file() and path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                return False
            kind = "model" if "d_model" in data or "vocab_size" in data else "train"
            catalog.register_config(path.stem, str(path), kind, data)
            return True
        if (path / "tokenizer.model").is_file():
            meta = _json(path / "meta.json")
            catalog.register_tokenizer(
                path.name, str(path), int(meta.get("vocab_size", 0)), meta.get("sha256", ""), meta
            )
            return True
        if (path / "adapter_config.json").is_file() and (path / "llmodel_adapter.json").is_file():
            catalog.register_adapter(path.name, str(path), _json(path / "llmodel_adapter.json"))
            return True
        if (path / "meta.json").is_file() and (path / "train.bin").is_file():
            catalog.register_dataset(path.name, str(path), _json(path / "meta.json"))
            return True
    except (OSError, json.JSONDecodeError, ValueError):
        return False
    return False


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
