"""Notices when the engine's workspace folder is deleted or replaced, so the engine does not outlive it.

A folder deleted and made again at the same path is another folder: its device and inode differ from the ones
the engine started with, and a new engine may already serve it. The supervisor looks before each of its ticks,
so what it writes next (events, run rows, the runs index) never lands in a folder that is not its own; only a
write already under way as the folder is swapped can.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def folder_identity(path: Path) -> tuple[int, int]:
    """The folder's (device, inode)."""
    info = os.stat(path)
    return info.st_dev, info.st_ino


def departure(path: Path, identity: tuple[int, int]) -> str | None:
    """Why ``path`` is no longer the folder whose identity was taken, or None while it still is."""
    try:
        now = folder_identity(path)
    except FileNotFoundError:
        return f"the workspace folder {path} was deleted"
    except OSError:
        return None  # a passing error (a network disk's hiccup) is not a departure
    return None if now == identity else f"the workspace folder {path} was replaced by another folder"


class WorkspaceWatch:
    """The workspace folder as found at start; :meth:`gone` calls ``on_gone(reason)`` the first time it is not."""

    def __init__(self, path: Path, on_gone: Callable[[str], None]) -> None:
        self.path, self.identity, self.on_gone = path, folder_identity(path), on_gone
        self.reason: str | None = None

    def gone(self) -> bool:
        if self.reason is None:
            self.reason = departure(self.path, self.identity)
            if self.reason is not None:
                self.on_gone(self.reason)
        return self.reason is not None
