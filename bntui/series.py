"""Pure helpers that prepare curves for the TUI plots: smoothing, downsampling, log scale.

No numpy, torch or textual here: these run in the UI process on every redraw."""

from __future__ import annotations

import math
from collections.abc import Sequence


def _as_float(value: float) -> float:
    """float(value), or NaN for a value no float holds (an integer of 400 digits): dropped
    or passed through like any other non-finite value, never an OverflowError."""
    try:
        return float(value)
    except (OverflowError, TypeError, ValueError):
        return math.nan


# Beyond this a plot's span (max - min) overflows to infinity: such a value is not drawn.
PLOT_LIMIT = 1e300


def _drawable(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= PLOT_LIMIT


def ema(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with debiasing, as TensorBoard's smoothing slider does.

    s_t = weight * s_{t-1} + (1 - weight) * x_t with s_0 = 0, reported as s_t / (1 - weight^t),
    so the first smoothed value equals the first input instead of being dragged towards 0.
    Non-finite values (a diverged loss) are passed through unchanged and do not enter the
    average; t counts the finite values only. weight 0 returns the input as floats."""
    if not (0.0 <= weight < 1.0):
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    if weight == 0.0:
        return [_as_float(v) for v in values]
    smoothed: list[float] = []
    state = 0.0
    count = 0
    for value in values:
        value = _as_float(value)
        if not math.isfinite(value):
            smoothed.append(value)
            continue
        count += 1
        state = weight * state + (1.0 - weight) * value
        smoothed.append(state / (1.0 - weight**count))
    return smoothed


def downsample(xs: Sequence[float], ys: Sequence[float], width: int) -> tuple[list[float], list[float]]:
    """At most `width` points that keep the curve's shape honest: the first and the last point,
    and for each of (width - 2) // 2 equal-count buckets in between its lowest and highest point
    (in x order). Spikes therefore survive and the global min and max are always kept (for
    width >= 4). Pairs where x or y is NaN, infinite or beyond +-PLOT_LIMIT are dropped first. width 1 keeps the last
    point (the newest value of a live curve); width <= 0 gives nothing."""
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys differ in length: {len(xs)} vs {len(ys)}")
    pairs = ((_as_float(x), _as_float(y)) for x, y in zip(xs, ys))
    points = [(x, y) for x, y in pairs if _drawable(x) and _drawable(y)]
    if width <= 0 or not points:
        return [], []
    if len(points) <= width:
        return [p[0] for p in points], [p[1] for p in points]
    if width == 1:
        return [points[-1][0]], [points[-1][1]]

    interior = points[1:-1]
    buckets = (width - 2) // 2
    kept = [points[0]]
    for b in range(buckets):
        start = b * len(interior) // buckets
        stop = (b + 1) * len(interior) // buckets
        if start == stop:
            continue
        chunk = range(start, stop)
        lowest = min(chunk, key=lambda i: interior[i][1])
        highest = max(chunk, key=lambda i: interior[i][1])
        for i in sorted({lowest, highest}):
            kept.append(interior[i])
    kept.append(points[-1])
    return [p[0] for p in kept], [p[1] for p in kept]


def log_safe(values: Sequence[float], *, clamp: bool = True) -> list[float]:
    """Values ready for a log-scale y axis, same length as the input (x stays aligned).

    clamp=True: zero and negative values are raised to the smallest positive value of the
    series, so a loss that reaches exactly 0 sits at the bottom of the chart instead of at
    -inf. clamp=False: they become NaN, which downsample() then drops. NaN and +inf stay as they
    are (-inf counts as non-positive). A series without any positive value comes back all NaN
    (nothing to draw on a log axis).
    """
    data = [_as_float(v) for v in values]
    positive = [v for v in data if v > 0 and math.isfinite(v)]
    floor = min(positive) if positive and clamp else math.nan
    return [v if (v > 0 or math.isnan(v)) else floor for v in data]
