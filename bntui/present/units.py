"""Numbers with their units, written one way everywhere: durations, losses, accuracies (in
percent) and differences of accuracies (in percentage points, "pt")."""

from __future__ import annotations

import math

MISSING = "-"  # a value a run does not have (yet)


def duration(seconds: float | None) -> str:
    """12.3s, 4m 05s, 2h 03m: tenths of a second under a minute, then the two largest units."""
    if seconds is None or not math.isfinite(seconds):
        return MISSING
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def loss(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def accuracy(value: float | None, *, missing: str = MISSING) -> str:
    """A fraction as a percentage, to two decimals."""
    if value is None:
        return missing
    return f"{100.0 * value:.2f}%" if math.isfinite(value) else str(value)


def points(value: float | None, *, signed: bool = True, missing: str = MISSING) -> str:
    """A difference of two accuracies in percentage points, without the unit: "+1.25"."""
    if value is None:
        return missing
    return f"{100.0 * value:{'+' if signed else ''}.2f}"


# What a metric is: how its values and its differences are written.
METRIC_KINDS = ("loss", "accuracy", "seconds", "count")


def metric_value(kind: str, value: float | None) -> str:
    if kind == "accuracy":
        return accuracy(value)
    if kind == "loss":
        return loss(value)
    if kind == "seconds":
        return duration(value)
    return MISSING if value is None else f"{value:g}"


def metric_delta(kind: str, value: float | None) -> str:
    """A difference of two values of a metric: +0.0123, +1.25 pt, +3.0s, +2."""
    if value is None:
        return MISSING
    if not math.isfinite(value):
        return str(value)
    if kind == "accuracy":
        return f"{points(value)} pt"
    if kind == "loss":
        return f"{value:+.4f}"
    if kind == "seconds":
        return f"{value:+.1f}s"
    return f"{value:+g}"


def setting(value: object) -> str:
    """A setting's value as a cell: switches on/off, lists comma-separated, None empty."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if value is None:
        return ""
    return str(value)
