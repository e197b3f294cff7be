"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import DiskFullError, first_line
from engine.processes import pid_alive


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, needed: int = 0) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds (a full disk:
    :class:`DiskFullError` naming ``path`` and ``needed``, the size of what was to be written when known)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*.tmp"):  # left by writers killed mid-write
        pid = stale.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(
        tmp_path, 0o644
    )  # mkstemp makes 0600; workspace files are ordinary files (secrets chmod themselves)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except Exception as error:
        if not out_of_space(error):
            raise
        written = tmp_path.stat().st_size if tmp_path.exists() else 0
        tmp_path.unlink(missing_ok=True)
        raise disk_full(target, max(needed, written), f"{target} is unchanged") from None
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    data = text.encode("utf-8")
    with atomic_path(path, needed=len(data)) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


@contextmanager
def atomic_dir(
    path: str | os.PathLike[str], *, needed: int = 0, last_good: str | None = None
) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``path``; it replaces ``path`` only if the block succeeds.

    A kill at any moment leaves the old directory (or none) in place, never a half-written one; the temporary
    directories of processes that died are cleared the next time. A full disk removes the temporary directory
    and raises :class:`DiskFullError` naming ``path``, the space it needs (``needed`` when the caller knows, at
    least what was written) and ``last_good`` (by default: the old directory is unchanged).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
        fsync_dir(target.parent)
    except Exception as error:
        written = tree_bytes(tmp)
        if not out_of_space(error, tmp, needed - written):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        if last_good is None:
            last_good = f"{target} is unchanged" if target.exists() else f"nothing was written to {target}"
        raise disk_full(target, max(needed, written), last_good) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def out_of_space(error: BaseException, path: Path | None = None, needed: int = 0) -> bool:
    """Whether ``error`` came of a full disk (or quota): safetensors says so in its text, a nested atomic write
    as :class:`DiskFullError`; torch's writer only fails ("iostream error"), so a write of ``needed`` bytes to
    ``path`` that fails with less than that free counts too."""
    if isinstance(error, DiskFullError):
        return True
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    if "No space left on device" in text or "os error 28" in text or "Disk quota exceeded" in text:
        return True
    return path is not None and isinstance(error, OSError | RuntimeError) and free_bytes(path) < needed


def disk_full(path: Path, needed: int, last_good: str) -> DiskFullError:
    """The one-line error for a full disk while writing ``path``: the space needed and free, what is still good."""
    free = format_bytes(free_bytes(path))
    need = f"about {format_bytes(needed)} and {free} is free" if needed else f"more than the {free} free"
    return DiskFullError(str(path), need, last_good)


def free_bytes(path: Path) -> int:
    """The bytes free on the file system holding ``path`` (or its nearest existing parent)."""
    for folder in (path, *path.parents):
        if folder.exists():
            return shutil.disk_usage(folder).free
    return 0


def tree_bytes(path: Path) -> int:
    """The size of the files under ``path`` (0 when it does not exist)."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def format_bytes(count: int) -> str:
    """``count`` bytes as people read them: 812 B, 3.4 MB, 1.2 GB."""
    if count < 1000:
        return f"{count} B"
    for unit, scale in (("KB", 1e3), ("MB", 1e6)):
        if count < scale * 1000:
            return f"{count / scale:.1f} {unit}"
    return f"{count / 1e9:.1f} GB"


def read_mapping(path: Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """A JSON (``.json``) or YAML file holding a mapping; ``error`` (one line naming the file) when it is not."""
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (json.JSONDecodeError, ValueError) as problem:
        raise error(f"{path}: malformed {what} ({problem})") from None
    except Exception as problem:  # yaml.YAMLError: the message spans lines; its first says where
        raise error(f"{path}: malformed {what} ({first_line(problem)})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: a {what} is a mapping of names to values")
    return data


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (the directory entry itself is flushed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
