"""A sweep's numbers: per swept value, each arm's final metric over seeds and the paired
BN - no-BN difference, as the result card gives them for one setting.

Runs pair by seed within one swept value (bntui.config.swept_settings / pairing_key). Diverged
runs are counted per value and arm, never silently dropped: a learning rate where one arm
diverges is the result the sweep looks for."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bntui.config import swept_settings
from bntui.stats import PairedResult, mean_std, paired_difference, t_quantile, verdict
from bntui.store.schema import RunRecord

Metric = Literal["test_accuracy", "best_val_loss", "best_val_accuracy"]
METRICS: dict[str, tuple[str, bool]] = {  # name -> (label, higher is better)
    "test_accuracy": ("test accuracy", True),
    "best_val_loss": ("best validation loss", False),
    "best_val_accuracy": ("best validation accuracy", True),
}


def metric_value(record: RunRecord, metric: str) -> float | None:
    """The run's final value of `metric`, None when it has none (or it is not a number)."""
    if metric == "test_accuracy":
        value = record.final.test_accuracy if record.final is not None else None
    elif metric == "best_val_loss":
        finite = [v for v in record.history.val_loss if math.isfinite(v)]
        value = min(finite) if finite and record.status == "finished" else None
    else:
        finite = [v for v in record.history.val_accuracy if math.isfinite(v)]
        value = max(finite) if finite and record.status == "finished" else None
    if record.status != "finished" or value is None or not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class ArmPoint:
    """One arm at one swept value: mean over seeds with the 95% CI of the mean."""

    n: int  # runs with a value
    mean: float | None
    low: float | None
    high: float | None
    diverged: int
    other: int  # runs neither finished nor diverged (running, failed, cancelled...)


@dataclass(frozen=True)
class SweepPoint:
    values: tuple  # the swept settings' values, in SweepSummary.settings order
    bn: ArmPoint
    no_bn: ArmPoint
    paired: PairedResult | None
    verdict: str


@dataclass(frozen=True)
class SweepSummary:
    group: str | None
    settings: tuple[str, ...]
    metric: str
    points: tuple[SweepPoint, ...]

    @property
    def metric_label(self) -> str:
        return METRICS[self.metric][0]

    @property
    def log_x(self) -> bool:
        """Learning rates are read on a log axis."""
        return self.settings == ("lr",)


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    mean, std = mean_std(values)
    if std is None:
        return mean, None, None
    half = t_quantile(0.5 + confidence / 2.0, len(values) - 1) * std / math.sqrt(len(values))
    return mean, mean - half, mean + half


def _arm_point(records: list[RunRecord], metric: str) -> tuple[ArmPoint, dict[int, float]]:
    by_seed: dict[int, float] = {}
    for record in records:
        value = metric_value(record, metric)
        if value is not None:
            by_seed.setdefault(record.config.seed, value)
    diverged = sum(r.status == "diverged" for r in records)
    other = sum(r.status not in ("finished", "diverged") for r in records)
    other += sum(r.status == "finished" and metric_value(r, metric) is None for r in records)
    mean, low, high = mean_interval(list(by_seed.values()))
    return ArmPoint(len(by_seed), mean, low, high, diverged, other), by_seed


def summarize_sweep(records: Sequence[RunRecord], metric: str = "test_accuracy") -> SweepSummary | None:
    """The sweep of one group, or None when its runs sweep no setting besides seed and BN."""
    if metric not in METRICS:
        raise ValueError(f"metric: must be one of {', '.join(METRICS)}")
    settings = tuple(swept_settings(r.config for r in records))
    if not settings:
        return None
    higher = METRICS[metric][1]
    by_value: dict[tuple, list[RunRecord]] = {}
    for record in records:
        by_value.setdefault(tuple(getattr(record.config, s) for s in settings), []).append(record)
    points = []
    for values in sorted(by_value, key=_sort_key):
        runs = by_value[values]
        bn, bn_seeds = _arm_point([r for r in runs if r.config.bn], metric)
        no_bn, nobn_seeds = _arm_point([r for r in runs if not r.config.bn], metric)
        common = sorted(bn_seeds.keys() & nobn_seeds.keys())
        paired = paired_difference([bn_seeds[s] for s in common], [nobn_seeds[s] for s in common]) if common else None
        points.append(SweepPoint(values, bn, no_bn, paired, verdict(paired, higher_is_better=higher)))
    group = records[0].group if records else None
    return SweepSummary(group, settings, metric, tuple(points))


def _sort_key(values: tuple) -> tuple:
    return tuple((0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)) for v in values)
