"""Runs side by side: their final and best metrics with the difference to a reference run, and
the settings in which they differ. `bntui compare` prints these rows, the TUI's compare view
shows them: one set of numbers, written by bntui.present.units."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bntui.config import RunConfig
from bntui.present.units import setting
from bntui.store.schema import RunRecord


def unique_runs(records: Sequence[RunRecord]) -> list[RunRecord]:
    """Each run once (the first time it is listed), in the order given."""
    seen: set[str] = set()
    unique = []
    for record in records:
        if record.id not in seen:
            seen.add(record.id)
            unique.append(record)
    return unique


def run_labels(records: Sequence[RunRecord]) -> list[str]:
    """dataset/arch/BN/seed per run; runs that would share a label get their id added."""
    labels = [record.config.label for record in records]
    return [f"{label} ({record.id})" if labels.count(label) > 1 else label for label, record in zip(labels, records)]


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


@dataclass(frozen=True)
class MetricSummary:
    final: float | None  # validation metric after the last epoch
    best: float | None  # lowest validation loss / highest validation accuracy
    test: float | None  # from the finished run's final metrics


def metric_summary(record: RunRecord, metric: str) -> MetricSummary:
    history = record.history
    values = list(history.val_loss if metric == "loss" else history.val_accuracy)
    final = values[-1] if values else None
    if final is None and record.final is not None:
        final = record.final.val_loss if metric == "loss" else record.final.val_accuracy
    finite = _finite(values)
    best = (min(finite) if metric == "loss" else max(finite)) if finite else None
    test = None
    if record.final is not None:
        test = record.final.test_loss if metric == "loss" else record.final.test_accuracy
    return MetricSummary(final, best, test)


def _difference(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None:
        return None
    return value - reference


@dataclass(frozen=True)
class ComparisonRow:
    run_id: str
    label: str
    status: str
    epochs: int
    values: MetricSummary
    deltas: MetricSummary  # this run minus the reference run (zero on the reference itself)
    is_reference: bool


def comparison_rows(records: Sequence[RunRecord], reference_index: int, metric: str) -> list[ComparisonRow]:
    labels = run_labels(records)
    summaries = [metric_summary(record, metric) for record in records]
    reference = summaries[reference_index] if summaries else MetricSummary(None, None, None)
    return [
        ComparisonRow(
            run_id=record.id,
            label=label,
            status=record.status,
            epochs=len(record.history),
            values=summary,
            deltas=MetricSummary(
                _difference(summary.final, reference.final),
                _difference(summary.best, reference.best),
                _difference(summary.test, reference.test),
            ),
            is_reference=index == reference_index,
        )
        for index, (record, label, summary) in enumerate(zip(records, labels, summaries))
    ]


@dataclass(frozen=True)
class SettingRow:
    name: str
    values: list[str]
    differs: bool


def config_diff(records: Sequence[RunRecord], show_all: bool = False, *, group: bool = False) -> list[SettingRow]:
    """The settings (RunConfig fields, in declaration order, then the run's group if `group`)
    whose values differ between the runs; every setting with show_all."""
    dumps = [{**record.config.model_dump(), "group": record.group} for record in records]
    rows = []
    for name in [*RunConfig.model_fields, *(["group"] if group else [])]:
        values = [dump.get(name) for dump in dumps]
        differs = any(value != values[0] for value in values[1:])
        if differs or show_all:
            rows.append(SettingRow(name, [setting(v) for v in values], differs))
    return rows
