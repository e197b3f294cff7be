"""Pick input files or folders (text, JSONL, chat JSONL, a saved dataset) from a directory tree, in a modal."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Static


class FilePicker(ModalScreen[list[str]]):
    """Enter (or a click) on a file adds it, ``a`` adds the highlighted folder; dismisses with the chosen paths."""

    DEFAULT_CSS = """
    FilePicker { align: center middle; }
    FilePicker > Vertical { width: 90; height: 30; border: thick $accent; background: $surface; padding: 1 2; }
    FilePicker DirectoryTree { height: 1fr; }
    FilePicker #picked { height: auto; max-height: 4; color: $text-muted; margin-top: 1; }
    FilePicker Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    FilePicker Button { margin-left: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("a", "add_folder", "Add folder"),
    ]

    def __init__(self, root: Path, chosen: list[str] | None = None) -> None:
        super().__init__()
        self.root = root
        self.chosen: list[str] = list(chosen or [])

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Choose input files under {self.root} (Enter adds a file, a adds the folder)")
            yield DirectoryTree(self.root, id="picker-tree")
            yield Static("", id="picked")
            with Horizontal():
                yield Button("Cancel", id="picker-cancel")
                yield Button("Use these", id="picker-done", variant="primary")

    def on_mount(self) -> None:
        self._show()
        self.query_one(DirectoryTree).focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self._add(event.path)

    def action_add_folder(self) -> None:
        node = self.query_one(DirectoryTree).cursor_node
        if node is not None and node.data is not None and node.data.path.is_dir():
            self._add(node.data.path)

    def _add(self, path: Path) -> None:
        text = str(path.resolve())
        if text not in self.chosen:
            self.chosen.append(text)
        self._show()

    def _show(self) -> None:
        self.query_one("#picked", Static).update(
            "chosen: " + ", ".join(self.chosen) if self.chosen else "nothing chosen yet"
        )

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "picker-done":
            self.dismiss(self.chosen)
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss([])
