"""Curve arithmetic for the charts: EMA smoothing, the training-time axis, merging history with live events."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

Point = tuple[int, float]

# The smoothing factors the run view steps through (0 = raw curve), TensorBoard-style.
SMOOTHING_STEPS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)


def ema(values: Sequence[float], alpha: float) -> list[float]:
    """Exponential moving average with bias correction, so the curve starts at the first value, not at 0."""
    if alpha <= 0.0:
        return list(values)
    smoothed, last, weight = [], 0.0, 0.0
    for value in values:
        last = alpha * last + (1 - alpha) * value
        weight = alpha * weight + (1 - alpha)
        smoothed.append(last / weight)
    return smoothed


def elapsed_axis(step_times: Sequence[Point]) -> tuple[list[int], list[float]]:
    """Steps and the training seconds elapsed by each, from the per-step ``step_time`` curve.

    A bucketed curve (``max_points``) holds the average step time of its bucket, so each point counts for the
    steps since the one before it.
    """
    steps: list[int] = []
    clock: list[float] = []
    previous, total = 0, 0.0
    for step, seconds in step_times:
        if step <= previous and steps:
            continue
        total += max(seconds, 0.0) * max(step - previous, 1)
        steps.append(step)
        clock.append(total)
        previous = step
    return steps, clock


def time_at(step: int, steps: Sequence[int], clock: Sequence[float]) -> float | None:
    """Training seconds elapsed at ``step`` (linear between known steps); None before any step is known."""
    if not steps:
        return None
    index = bisect.bisect_left(steps, step)
    if index < len(steps) and steps[index] == step:
        return clock[index]
    if index == 0:
        return clock[0] * step / steps[0] if steps[0] else 0.0
    if index >= len(steps):
        rate = clock[-1] / steps[-1] if steps[-1] else 0.0
        return clock[-1] + rate * (step - steps[-1])
    s0, s1, c0, c1 = steps[index - 1], steps[index], clock[index - 1], clock[index]
    return c0 + (c1 - c0) * (step - s0) / (s1 - s0)


class Curves:
    """Every metric curve of one run: the recorded history plus live events, each step once, in step order."""

    def __init__(self) -> None:
        self.points: dict[str, list[Point]] = {}
        self.version = 0

    def load(self, history: dict[str, Iterable[Sequence[float]]]) -> None:
        self.points = {name: [(int(p[0]), float(p[1])) for p in pts] for name, pts in history.items()}
        self.version += 1

    def add(self, step: int, values: dict[str, float]) -> bool:
        """Append one event's measurements; a step already recorded for a metric is ignored (replayed lines)."""
        changed = False
        for name, value in values.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                continue
            curve = self.points.setdefault(name, [])
            if curve and curve[-1][0] >= step:
                continue
            curve.append((step, float(value)))
            changed = True
        if changed:
            self.version += 1
        return changed

    def truncate(self, step: int) -> None:
        """Forget everything after ``step``: a resumed run repeats those steps."""
        for name, curve in self.points.items():
            self.points[name] = [p for p in curve if p[0] <= step]
        self.version += 1

    def get(self, name: str) -> list[Point]:
        return self.points.get(name, [])

    def x_values(self, name: str, axis: str) -> tuple[list[float], list[float]]:
        """The curve's x (steps, or training seconds when ``axis == "time"``) and y values."""
        curve = self.get(name)
        ys = [v for _, v in curve]
        if axis != "time":
            return [float(s) for s, _ in curve], ys
        steps, clock = elapsed_axis(self.get("step_time"))
        xs = [time_at(s, steps, clock) for s, _ in curve]
        if any(x is None for x in xs):
            return [float(s) for s, _ in curve], ys
        return [float(x) for x in xs if x is not None], ys


def downsample(xs: Sequence[float], ys: Sequence[float], limit: int) -> tuple[list[float], list[float]]:
    """At most ``limit`` points: the first and last as they are, the ones between averaged in equal-count buckets."""
    count = len(xs)
    if count <= limit or limit < 3:
        return list(xs), list(ys)
    buckets = limit - 2
    inner = count - 2
    out_x, out_y = [float(xs[0])], [float(ys[0])]
    for bucket in range(buckets):
        start = 1 + bucket * inner // buckets
        end = 1 + (bucket + 1) * inner // buckets
        if end > start:
            out_x.append(sum(xs[start:end]) / (end - start))
            out_y.append(sum(ys[start:end]) / (end - start))
    out_x.append(float(xs[-1]))
    out_y.append(float(ys[-1]))
    return out_x, out_y
