"""Every key and where things are (F1 or ?)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen

from llmodel_app.tui import keymap
from llmodel_app.tui.tabs import tab_keys_line


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 96; height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = keymap.CLOSE

    def compose(self) -> ComposeResult:
        from textual.widgets import Markdown  # markdown-it loads on the first F1, not at start-up

        with VerticalScroll():
            yield Markdown(keymap.HELP_TEXT.format(tab_keys=tab_keys_line()) + "\n*escape closes this help.*")
