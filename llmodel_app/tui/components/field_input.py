"""The workbench's one text field: the focus rules of Posting and Harlequin, and keys kept in the order typed."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.widgets import Input

from llmodel_app.tui.messages import FieldLeft

FOCUS_KEYS = {"tab": "focus_next", "shift+tab": "focus_previous"}


class FieldInput(Input):
    """A field keeps the printable keys typed into it (the digits that switch tabs elsewhere included), Tab moves
    on without selecting the next field's text (the next key would replace it), and Escape leaves the field for
    the tab bar (``FieldLeft``); the app's ctrl shortcuts are priority bindings, so they work here too.

    Textual runs a key's binding only once the key has bubbled up to the app, while a printable key is inserted
    as soon as the Input reads it; in a burst (a fast typist, a paste of keys, tmux) ``ctrl+u 2 5 6`` became
    ``2 5 6 ctrl+u`` and the new value was lost. Here the field's own editing keys and tab run as they are read,
    and a key read after a tab has moved the focus goes on to the newly focused widget."""

    def __init__(self, *args: Any, select_on_focus: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, select_on_focus=select_on_focus, **kwargs)

    async def _on_key(self, event: events.Key) -> None:
        focused = self.screen.focused
        if focused is not None and focused is not self:  # an earlier key of this burst moved the focus
            event.stop()
            event.prevent_default()
            focused.post_message(events.Key(event.key, event.character))
            return
        if event.key in FOCUS_KEYS:
            event.stop()
            event.prevent_default()
            getattr(self.screen, FOCUS_KEYS[event.key])()
            return
        if event.key == "escape" and not self.screen.is_modal:  # a modal's own Escape closes it
            event.stop()
            event.prevent_default()
            self.post_message(FieldLeft())
            return
        # The field's own bindings (the private map: it also holds any keymap the app applies).
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            event.stop()
            event.prevent_default()
            await self.run_action(binding.action)
            return
        await super()._on_key(event)
