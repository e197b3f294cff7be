"""A study at a glance, drawn by plotext: the Pareto front (val_loss against the second objective) of a study
with several objectives, or the best-so-far curve of one with a single objective."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from llmodel_app.tui.components.metric_chart import PALETTE

TRIAL_COLOUR, FRONT_COLOUR = 245, PALETTE[1]


def study_points(study: dict[str, Any]) -> dict[str, Any]:
    """What the chart draws: every complete trial as (x, y), the front (or best-so-far) line, and the axes."""
    objectives = (study.get("settings") or {}).get("objectives") or ["val_loss"]
    complete = [
        t
        for t in study.get("trials", [])
        if t.get("state") == "complete" and "val_loss" in (t.get("objectives") or {})
    ]
    if len(objectives) > 1:
        second = objectives[1]
        front = set(study.get("pareto_front") or [])
        points = [
            (t["objectives"][second], t["objectives"]["val_loss"], t["number"])
            for t in complete
            if second in t["objectives"]
        ]
        line = sorted((x, y) for x, y, n in points if n in front)
        return {
            "points": [(x, y) for x, y, n in points if n not in front],
            "line": line,
            "line_markers": True,
            "title": f"val_loss vs {second}: Pareto front ◆",
            "x": second,
        }
    by_trial = [(float(t["number"]), t["objectives"]["val_loss"]) for t in complete]
    best = [(float(n), v) for n, v in study.get("best_so_far") or []]
    return {
        "points": by_trial,
        "line": best,
        "line_markers": False,
        "title": "val_loss by trial: best so far",
        "x": "trial",
    }


def plot_study(drawn: dict[str, Any], *, width: int, height: int, dark: bool = True) -> Text:
    """Render :func:`study_points` with plotext into a Rich ``Text`` of the given size."""
    import plotext

    figure = plotext.figure
    figure.clear()
    figure.theme("simple")
    figure.plot_size(max(width, 20), max(height, 6))
    figure.title(drawn["title"])
    layers = [
        (drawn["points"], "•", TRIAL_COLOUR if dark else 250, False),
        (drawn["line"], "braille", FRONT_COLOUR, len(drawn["line"]) > 1),
    ]
    if drawn["line_markers"]:
        layers.append(
            (drawn["line"], "◆", FRONT_COLOUR, False)
        )  # the front's trials over the line joining them
    for xs_ys, marker, colour, joined in layers:
        if not xs_ys:
            continue
        signal = figure.signal(
            [float(x) for x, _ in xs_ys],
            [float(y) for _, y in xs_ys],
            marker=plotext.marker(marker, plotext.pixel(foreground=colour)),
        )
        if joined:
            signal.lines()
        figure.draw(signal)
    return Text.from_ansi(figure.build().string(), no_wrap=True, overflow="crop")


class StudyChart(Widget):
    """The open study's Pareto front or best-so-far curve; it redraws only when what it shows changes."""

    DEFAULT_CSS = """
    StudyChart { width: 1fr; height: 1fr; min-height: 8; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.drawn: dict[str, Any] = {"points": [], "line": []}
        self._cache: tuple[Any, Text] | None = None

    def show(self, study: dict[str, Any]) -> None:
        self.drawn = study_points(study)
        self.refresh()

    def render(self) -> Text:
        width, height = self.size
        if not self.drawn["points"] and not self.drawn["line"]:
            return Text("no complete trial yet", style="dim", justify="center")
        dark = self.app.current_theme.dark
        key = (repr(self.drawn), width, height, dark)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, plot_study(self.drawn, width=width, height=height, dark=dark))
        return self._cache[1]
