"""The chart arithmetic: smoothing, the training-time axis, history merged with live events."""

from __future__ import annotations

import pytest

from llmodel_app.tui.series import Curves, downsample, elapsed_axis, ema, time_at


def test_ema_starts_at_the_first_value_and_follows_the_curve():
    assert ema([4.0, 4.0, 4.0], 0.9) == pytest.approx([4.0, 4.0, 4.0])
    smoothed = ema([1.0, 0.0, 0.0, 0.0], 0.5)
    assert smoothed[0] == 1.0 and smoothed[1] == pytest.approx(1 / 3) and smoothed[-1] < smoothed[1]
    assert ema([1.0, 2.0], 0.0) == [1.0, 2.0]


def test_the_time_axis_counts_each_bucketed_step():
    steps, clock = elapsed_axis([(1, 0.5), (2, 0.5), (10, 1.0)])
    assert steps == [1, 2, 10] and clock == [0.5, 1.0, 9.0]
    assert time_at(6, steps, clock) == pytest.approx(5.0)
    assert time_at(12, steps, clock) == pytest.approx(10.8)


def test_live_events_extend_the_history_each_step_once_and_a_resume_truncates():
    curves = Curves()
    curves.load({"loss": [[1, 5.0], [2, 4.0]]})
    assert not curves.add(2, {"loss": 9.0})
    assert curves.add(3, {"loss": 3.0, "note": "text", "nan": float("nan")})
    assert curves.get("loss") == [(1, 5.0), (2, 4.0), (3, 3.0)] and "nan" not in curves.points
    curves.truncate(1)
    assert curves.get("loss") == [(1, 5.0)]
    assert curves.x_values("loss", "time") == ([1.0], [5.0]), "no step times: the axis stays in steps"


def test_a_long_curve_is_thinned_keeping_its_ends():
    xs = [float(x) for x in range(1, 1001)]
    thin_x, thin_y = downsample(xs, xs, 50)
    assert len(thin_x) == 50 and thin_x[0] == 1.0 and thin_x[-1] == 1000.0
    assert thin_x == sorted(thin_x) and thin_y == thin_x
    assert downsample([1.0, 2.0], [3.0, 4.0], 50) == ([1.0, 2.0], [3.0, 4.0])
