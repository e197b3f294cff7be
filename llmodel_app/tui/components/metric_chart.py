"""One metric's curve drawn by plotext, raw (dim) under its EMA-smoothed line."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from llmodel_app.tui.series import downsample, ema

# plotext colour codes (256-colour) for the overlaid curves of the compare view.
PALETTE = (39, 208, 70, 170, 220, 45, 196, 141)


def legend(labels: Sequence[str]) -> Text:
    """The overlaid curves' names in their colours, one a line, to show beside the charts rather than over them."""
    text = Text()
    for index, label in enumerate(labels):
        colour = Color.from_ansi(PALETTE[index % len(PALETTE)])
        text.append("\n" if index else "").append("━━ ", style=Style(color=colour, bold=True)).append(label)
    return text


def chart_title(name: str, flags: Sequence[str], width: int) -> str:
    """``name · flag · flag`` in at most ``width`` columns: plotext drops a title wider than its plot, so the
    name gives way (ending in …) before the flags that say how the curve is drawn."""
    title = " · ".join([name, *flags])
    if len(title) <= width:
        return title
    tail = "".join(f" · {flag}" for flag in flags)
    room = width - len(tail)
    return (name[: room - 1] + "…" + tail) if room >= 4 else title[: width - 1] + "…"


def plot(
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    *,
    width: int,
    height: int,
    title: str,
    smoothing: float = 0.0,
    log_scale: bool = False,
    dark: bool = True,
) -> Text:
    """Render curves ``(label, xs, ys)`` with plotext into a Rich ``Text`` of the given size."""
    import plotext

    figure = plotext.figure
    figure.clear()
    figure.theme("simple")
    figure.plot_size(max(width, 20), max(height, 6))
    figure.title(title)
    raw_colour = 245 if dark else 250
    limit = max(width, 20)  # a point per column: lines join them, and each further point costs draw time
    for index, (_, xs, ys) in enumerate(series):
        points = [
            (x, y) for x, y in zip(xs, ys, strict=False) if math.isfinite(y) and (y > 0 or not log_scale)
        ]
        if not points:
            continue
        px, py = [p[0] for p in points], [p[1] for p in points]
        colour = PALETTE[index % len(PALETTE)]
        smoothed = ema(py, smoothing) if smoothing > 0 else py  # on every point, before thinning
        if smoothing > 0 and len(series) == 1:
            raw_x, raw_y = downsample(px, py, limit)
            raw = figure.signal(
                raw_x, raw_y, marker=plotext.marker("braille", plotext.pixel(foreground=raw_colour))
            )
            raw.lines()
            figure.draw(raw)
        line_x, line_y = downsample(px, smoothed, limit)
        line = figure.signal(
            line_x, line_y, marker=plotext.marker("braille", plotext.pixel(foreground=colour))
        )
        line.lines()  # no plotext label: its legend sits inside the plot, over the curves (see legend())
        figure.draw(line)
    if log_scale:
        figure.ruler("y").scale("log")
    return Text.from_ansi(figure.build().string(), no_wrap=True, overflow="crop")


class MetricChart(Widget):
    """A chart of one metric (or of several runs' curves of it); it redraws only when what it shows changes."""

    DEFAULT_CSS = """
    MetricChart { width: 1fr; height: 1fr; min-height: 8; }
    """

    def __init__(self, metric: str, title: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metric, self.title = metric, title
        self.series: list[tuple[str, list[float], list[float]]] = []
        self.smoothing = 0.0
        self.log_scale = False
        self.axis = "step"
        self._cache: tuple[Any, Text] | None = None

    @property
    def points(self) -> list[tuple[float, float]]:
        """The (x, y) points of the first curve."""
        if not self.series:
            return []
        _, xs, ys = self.series[0]
        return list(zip(xs, ys, strict=True))

    def show(self, xs: list[float], ys: list[float], *, smoothing: float, log_scale: bool, axis: str) -> None:
        self.series = [(self.metric, xs, ys)]
        self.smoothing, self.log_scale, self.axis = smoothing, log_scale, axis
        self.refresh()

    def show_many(
        self, series: list[tuple[str, list[float], list[float]]], *, log_scale: bool = False
    ) -> None:
        self.series = series
        self.smoothing, self.log_scale, self.axis = 0.0, log_scale, "step"
        self.refresh()

    def render(self) -> Text:
        width, height = self.size
        if not any(ys for _, _, ys in self.series):
            return Text(f"{self.title}\n\nno points yet", style="dim", justify="center")
        dark = self.app.current_theme.dark
        shape = tuple(
            (label, len(xs), xs[-1] if xs else None, ys[-1] if ys else None) for label, xs, ys in self.series
        )
        key = (shape, width, height, self.smoothing, self.log_scale, self.axis, dark)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        flags = [f"ema {self.smoothing:g}"] * bool(self.smoothing) + ["log"] * self.log_scale
        flags += ["x: time"] * (self.axis == "time")
        title = chart_title(self.title, flags, max(width, 20))
        text = plot(
            self.series,
            width=width,
            height=height,
            title=title,
            smoothing=self.smoothing,
            log_scale=self.log_scale,
            dark=dark,
        )
        self._cache = (key, text)
        return text
