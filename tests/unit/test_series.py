"""Plot-series helpers: EMA smoothing, shape-keeping downsampling, log-scale safety."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bntui.series import downsample, ema, log_safe

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


# --------------------------------------------------------------------------- ema


def test_ema_weight_zero_returns_the_input():
    assert ema([3, 1.5, -2.0], 0.0) == [3.0, 1.5, -2.0]


def test_ema_is_debiased_so_the_first_value_is_the_first_input():
    smoothed = ema([10.0, 0.0, 0.0], 0.9)
    assert smoothed[0] == pytest.approx(10.0)
    # Without debiasing the first value would be (1 - 0.9) * 10 = 1.


def test_ema_hand_computed():
    # s1 = 0.5*1 = 0.5 -> 0.5/(1-0.5) = 1; s2 = 0.5*0.5 + 0.5*2 = 1.25 -> 1.25/(1-0.25) = 5/3
    assert ema([1.0, 2.0], 0.5) == pytest.approx([1.0, 5.0 / 3.0])


def test_ema_of_a_constant_series_is_that_constant():
    assert ema([4.0] * 20, 0.95) == pytest.approx([4.0] * 20)


@given(st.lists(finite, min_size=1, max_size=40), st.floats(min_value=0.0, max_value=0.99))
def test_ema_equals_an_exponentially_weighted_mean_of_the_prefix(values, weight):
    smoothed = ema(values, weight)
    assert len(smoothed) == len(values)
    for t in range(1, len(values) + 1):
        weights = [weight ** (t - i) for i in range(1, t + 1)]
        expected = math.fsum(w * x for w, x in zip(weights, values)) / math.fsum(weights)
        assert smoothed[t - 1] == pytest.approx(expected, rel=1e-9, abs=1e-6)
        assert min(values[:t]) - 1e-6 <= smoothed[t - 1] <= max(values[:t]) + 1e-6


def test_ema_passes_non_finite_values_through_without_poisoning_the_average():
    smoothed = ema([1.0, math.nan, 1.0, math.inf, 1.0], 0.5)
    assert math.isnan(smoothed[1]) and math.isinf(smoothed[3])
    assert [smoothed[0], smoothed[2], smoothed[4]] == pytest.approx([1.0, 1.0, 1.0])


@pytest.mark.parametrize("weight", [-0.1, 1.0, 1.5, math.nan])
def test_ema_rejects_weights_outside_0_1(weight):
    with pytest.raises(ValueError, match="smoothing weight"):
        ema([1.0], weight)


# --------------------------------------------------------------------------- downsample


def test_downsample_leaves_short_series_alone():
    assert downsample([1, 2, 3], [5, 6, 7], 10) == ([1.0, 2.0, 3.0], [5.0, 6.0, 7.0])


def test_downsample_keeps_a_single_spike():
    xs = list(range(1000))
    ys = [1.0] * 1000
    ys[437] = 50.0
    ys[811] = -20.0
    out_x, out_y = downsample(xs, ys, 20)
    assert len(out_x) <= 20
    assert (437.0, 50.0) in zip(out_x, out_y)
    assert (811.0, -20.0) in zip(out_x, out_y)


def test_downsample_drops_nan_and_inf_pairs():
    xs = [0, 1, 2, 3, math.nan, 5]
    ys = [1.0, math.nan, math.inf, 4.0, 5.0, -math.inf]
    assert downsample(xs, ys, 100) == ([0.0, 3.0], [1.0, 4.0])


def test_downsample_small_widths():
    xs, ys = list(range(10)), [float(i) for i in range(10)]
    assert downsample(xs, ys, 0) == ([], [])
    assert downsample(xs, ys, 1) == ([9.0], [9.0])  # the newest point of a live curve
    assert downsample(xs, ys, 2) == ([0.0, 9.0], [0.0, 9.0])


def test_downsample_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        downsample([1, 2], [1.0], 5)


@given(
    st.lists(st.tuples(finite, finite), min_size=1, max_size=300),
    st.integers(min_value=4, max_value=60),
)
def test_downsample_respects_width_and_keeps_ends_and_extremes(points, width):
    points.sort(key=lambda p: p[0])
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    out_x, out_y = downsample(xs, ys, width)
    assert len(out_x) == len(out_y) <= width
    assert (out_x[0], out_y[0]) == (xs[0], ys[0])
    assert (out_x[-1], out_y[-1]) == (xs[-1], ys[-1])
    assert min(out_y) == min(ys) and max(out_y) == max(ys)
    # The output is a subsequence of the input, in order.
    remaining = iter(zip(xs, ys))
    assert all(any(point == candidate for candidate in remaining) for point in zip(out_x, out_y))


@given(st.lists(finite, min_size=0, max_size=200), st.integers(min_value=0, max_value=50))
def test_downsample_never_exceeds_width(ys, width):
    out_x, out_y = downsample(list(range(len(ys))), ys, width)
    assert len(out_x) == len(out_y) <= width


# --------------------------------------------------------------------------- log_safe


def test_log_safe_clamps_non_positive_values_to_the_smallest_positive_one():
    assert log_safe([0.5, 0.0, 0.2, -1.0, 3.0]) == [0.5, 0.2, 0.2, 0.2, 3.0]


def test_log_safe_without_clamping_turns_non_positive_values_into_nan():
    out = log_safe([0.5, 0.0, -3.0, 2.0], clamp=False)
    assert out[0] == 0.5 and out[3] == 2.0
    assert math.isnan(out[1]) and math.isnan(out[2])
    # downsample then drops them, keeping x aligned.
    assert downsample([0, 1, 2, 3], out, 10) == ([0.0, 3.0], [0.5, 2.0])


def test_log_safe_keeps_nan_and_positive_infinity_and_clamps_negative_infinity():
    out = log_safe([math.nan, math.inf, -math.inf, 1.0])
    assert math.isnan(out[0]) and out[1] == math.inf and out[2:] == [1.0, 1.0]


def test_log_safe_series_without_positive_values_is_all_nan():
    out = log_safe([0.0, -1.0])
    assert len(out) == 2 and all(math.isnan(v) for v in out)
