"""An attention map as a heatmap, drawn line by line (Line API): token labels on both axes and a colour scale."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.binding import BindingType
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from llmodel_app.tui import keymap
from llmodel_app.tui.messages import AttentionCursor

CELL = 2  # characters per column of the map
MAX_LABEL = 10
# A perceptually ordered ramp (viridis anchors): low attention dark blue, high attention yellow.
RAMP = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def colour_for(value: float) -> Color:
    """The ramp's colour at ``value`` in [0, 1]."""
    value = min(max(value, 0.0), 1.0) * (len(RAMP) - 1)
    low = int(value)
    high = min(low + 1, len(RAMP) - 1)
    frac = value - low
    r, g, b = (round(a + (c - a) * frac) for a, c in zip(RAMP[low], RAMP[high], strict=True))
    return Color.from_rgb(r, g, b)


def shown_token(token: str) -> str:
    """Whitespace made visible, so every label has a width."""
    return token.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"


class AttentionHeatmap(ScrollView, can_focus=True):
    """Rows are query tokens, columns key tokens; a cell's colour is the weight scaled to the map's maximum."""

    BINDINGS: ClassVar[list[BindingType]] = keymap.HEATMAP

    DEFAULT_CSS = """
    AttentionHeatmap { height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tokens: list[str] = []
        self.matrix: list[list[float]] = []
        self.maximum = 1.0
        self._styles: dict[int, Style] = {}
        self.cursor = (0, 0)

    def show(self, tokens: list[str], matrix: list[list[float]]) -> None:
        self.tokens = [shown_token(t) for t in tokens]
        self.matrix = matrix
        self.maximum = max((max(row) for row in matrix if row), default=1.0) or 1.0
        self._styles = {}
        count = len(self.tokens)
        self.cursor = (min(self.cursor[0], max(count - 1, 0)), min(self.cursor[1], max(count - 1, 0)))
        self.virtual_size = Size(self._label_width + 1 + CELL * len(self.tokens) + 1, self._height)
        self.refresh()

    @property
    def _label_width(self) -> int:
        return min(max((len(t) for t in self.tokens), default=1), MAX_LABEL)

    @property
    def _header_rows(self) -> int:
        return min(max((len(t) for t in self.tokens), default=1), MAX_LABEL)

    @property
    def _height(self) -> int:
        return self._header_rows + len(self.tokens) + 3 if self.tokens else 1

    def _cell_style(self, value: float) -> Style:
        level = round(min(max(value / self.maximum, 0.0), 1.0) * 63)
        style = self._styles.get(level)
        if style is None:
            style = self._styles[level] = Style(bgcolor=colour_for(level / 63))
        return style

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        strip = self._line(y + scroll_y)
        return strip.crop(scroll_x, scroll_x + self.size.width)

    def _line(self, row: int) -> Strip:
        if not self.tokens:  # one line says so; the rows below it stay empty
            return Strip([Segment("no attention snapshot", Style(dim=True))]) if row == 0 else Strip.blank(0)
        width = self._label_width
        header = self._header_rows
        label_style = Style(color="bright_black")
        if row < header:
            # Key-token labels, written downwards, one character per row, bottom-aligned above their column.
            segments = [Segment(" " * (width + 1))]
            for token in self.tokens:
                text = token[:header]
                index = row - (header - len(text))
                segments.append(
                    Segment((text[index] if 0 <= index < len(text) else " ").ljust(CELL), label_style)
                )
            return Strip(segments)
        query = row - header
        if query < len(self.tokens):
            segments = [Segment(self.tokens[query][:width].rjust(width) + " ", label_style)]
            values = self.matrix[query] if query < len(self.matrix) else []
            for key in range(len(self.tokens)):
                value = values[key] if key < len(values) else 0.0
                style = self._cell_style(value)
                if (query, key) == self.cursor and self.has_focus:
                    segments.append(
                        Segment(
                            "◆".ljust(CELL),
                            style + Style(color="white" if value < self.maximum / 2 else "black"),
                        )
                    )
                else:
                    segments.append(Segment(" " * CELL, style))
            return Strip(segments)
        if row == header + len(self.tokens) + 1:
            segments = [Segment(" " * (width + 1)), Segment("0 ", label_style)]
            segments += [Segment(" ", Style(bgcolor=colour_for(i / 23))) for i in range(24)]
            segments.append(Segment(f" {self.maximum:.2f}", label_style))
            return Strip(segments)
        return Strip.blank(0)

    def action_cursor(self, rows: int, columns: int) -> None:
        if not self.tokens:
            return
        last = len(self.tokens) - 1
        query = min(max(self.cursor[0] + rows, 0), last)
        key = min(max(self.cursor[1] + columns, 0), query)  # causal: a query sees keys up to itself
        self.cursor = (query, key)
        region = Region(self._label_width + 1 + key * CELL, self._header_rows + query, CELL, 1)
        self.scroll_to_region(region, animate=False, immediate=True)
        self.refresh()
        weight = (
            self.matrix[query][key] if query < len(self.matrix) and key < len(self.matrix[query]) else 0.0
        )
        self.post_message(AttentionCursor(self.tokens[query], self.tokens[key], weight))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
