"""Runs as table rows, one per run: what `bntui export --format csv|md|latex` and the TUI's
export dialog write. Columns are named as the settings are (lr, bn, seed, ...), then tags, the
note and the final metrics (test_accuracy, ...), so a spreadsheet or pandas reads them as is."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bntui.config import RunConfig
from bntui.store.annotations import read_annotations
from bntui.present.tables import PlainTable
from bntui.present.units import setting

FINAL_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")


def runs_table(runs: Sequence[Any]) -> PlainTable:
    """One row per run (bntui.store.StoredRun) that has a record: id, group, status, every
    config setting, tags, note, final metrics. Numbers are written in full (repr)."""
    settings = list(RunConfig.model_fields)
    headers = ["id", "group", "status", *settings, "tags", "note", *FINAL_METRICS]
    rows = []
    for run in runs:
        record = run.record
        if record is None:
            continue
        notes = read_annotations(run.path)
        final = record.final
        rows.append(
            [
                run.id,
                record.group or "",
                run.status,
                *(setting(getattr(record.config, name)) for name in settings),
                " ".join(notes.tags),
                notes.note or "",
                *(repr(getattr(final, name)) if final is not None else "" for name in FINAL_METRICS),
            ]
        )
    numeric = {headers.index(name) for name in FINAL_METRICS}
    return PlainTable(headers, rows, "", numeric)
