"""Fingerprints that key the cache of datasets prepared from raw inputs."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.errors import DataError


def input_fingerprint(paths: Iterable[str | os.PathLike[str]], *, extra: dict[str, Any]) -> str:
    """Hash of each input file's path, size and mtime (directories walked, sorted) plus ``extra`` settings."""
    entries: list[list[Any]] = []
    for raw in paths:
        path = Path(raw).resolve()
        if not path.exists():
            raise DataError(f"{raw}: no such file or directory; check the path")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            stat = file.stat()
            entries.append([str(file), stat.st_size, stat.st_mtime_ns])
    blob = json.dumps({"inputs": entries, "extra": extra}, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()
