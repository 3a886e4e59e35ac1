"""Export runs to one versioned JSON document, and import such a document back into a store.

Import checks the whole file first (JSON, envelope, schema version) and writes nothing when
that fails; then each run is checked on its own: bad runs are reported and skipped, good ones
are written in the store layout under their id, or under a new one if that id is taken by a
different run. A run already in the store with the same content (under its id or one of its
-importN ids), or listed twice in the file, is skipped: importing the same file twice adds
nothing."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from bntui.config import format_validation_error
from bntui.store.layout import JsonProblem, StoreError, atomic_write_bytes, parse_json
from bntui.store.reader import StoredRun, list_runs
from bntui.store.schema import SUPPORTED_SCHEMA_VERSIONS, ExportDocument, RunRecord, as_imported
from bntui.store.writer import ensure_runs_dir, write_record

_MAX_ID = 128


class ImportFileError(StoreError):
    """The file as a whole cannot be imported; the message names it. Nothing was written."""


@dataclass
class ImportReport:
    imported: list[tuple[str, str]] = field(default_factory=list)  # (id in the file, id here)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (id or "#n", reason)
    skipped: list[str] = field(default_factory=list)  # ids already in the store, same content


def export_document(runs: list[StoredRun]) -> ExportDocument:
    """A document holding every given run that has a record (a run whose config.json cannot
    be read has none and is left out: the caller may say so)."""
    from bntui.store.annotations import read_annotations

    records = []
    for run in runs:
        if run.record is not None:
            notes = read_annotations(run.path)
            records.append(run.record.model_copy(update={"tags": notes.tags, "note": notes.note}))
    return ExportDocument(runs=records)


def export_text(doc: ExportDocument) -> str:
    return doc.model_dump_json(indent=2) + "\n"


def write_export(doc: ExportDocument, path_or_dash: str | Path, *, stdout: TextIO | None = None) -> None:
    """Write to a file atomically, or to stdout for "-". Raises StoreWriteError for a file
    that cannot be written."""
    text = export_text(doc)
    if str(path_or_dash) == "-":
        stream = stdout or sys.stdout
        stream.write(text)
        stream.flush()
        return
    atomic_write_bytes(Path(path_or_dash), text.encode("utf-8"))


MAX_IMPORT_BYTES = 512 * 2**20  # far above any real export; /dev/zero is refused, not read forever


def read_export(path: str | Path, *, stdin: TextIO | None = None) -> list[object]:
    """Check a file's envelope and return its runs, still unvalidated. "-" reads stdin."""
    name = "stdin" if str(path) == "-" else str(path)
    try:
        if str(path) == "-":
            source = stdin or sys.stdin
            raw = getattr(source, "buffer", None)
            data = (raw or source).read(MAX_IMPORT_BYTES + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise ImportFileError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportFileError(
            f"{name}: larger than {MAX_IMPORT_BYTES // 2**20} MiB, not a bntui export (export fewer runs per file)"
        )
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ImportFileError(f"{name}: not a bntui export (not UTF-8 text)") from None
    try:
        data = parse_json(data)
    except JsonProblem as exc:
        raise ImportFileError(f"{name}: {exc}") from None
    if not isinstance(data, dict) or "runs" not in data:
        raise ImportFileError(f"{name}: not a bntui export (expected a JSON object with schema_version and runs)")
    version = data.get("schema_version")
    if type(version) is not int or version not in SUPPORTED_SCHEMA_VERSIONS:  # true == 1
        supported = ", ".join(map(str, SUPPORTED_SCHEMA_VERSIONS))
        shown = "missing" if "schema_version" not in data else f"{version!r} is not supported"
        raise ImportFileError(f"{name}: schema_version {shown} (this bntui reads {supported})")
    runs = data["runs"]
    if not isinstance(runs, list):
        raise ImportFileError(f"{name}: runs must be a list")
    try:
        ExportDocument.model_validate({**data, "runs": []})
    except ValidationError as exc:
        raise ImportFileError(f"{name}: {format_validation_error(exc)}") from None
    return runs


def import_id(base: str, attempt: int) -> str:
    """The id an imported run tries on its attempt-th try: its own, then -import2, -import3..."""
    if attempt == 0:
        return base
    suffix = f"-import{attempt + 1}"
    return base[: _MAX_ID - len(suffix)] + suffix


def import_runs(runs_dir: Path | str, path: str | Path, *, stdin: TextIO | None = None) -> ImportReport:
    """Import every valid run of an export file. Raises ImportFileError (nothing written) when
    the file as a whole is unusable, StoreWriteError when the runs dir is; each bad run is
    reported in ImportReport.rejected."""
    runs_dir = Path(runs_dir)
    items = read_export(path, stdin=stdin)
    ensure_runs_dir(runs_dir)  # one error for the whole import, not one per run
    # Records are read only for the ids compared (a listing holds no series).
    stored: dict[str, StoredRun | RunRecord] = {run.id: run for run in list_runs(runs_dir) if run.brief is not None}
    report = ImportReport()
    for index, item in enumerate(items):
        source = f"#{index + 1}"
        if isinstance(item, dict) and isinstance(item.get("id"), str) and len(item["id"]) <= _MAX_ID:
            source = item["id"]  # named by its id when that is short enough to print
        try:
            record = RunRecord.model_validate(item)
        except ValidationError as exc:
            report.rejected.append((source, format_validation_error(exc)))
            continue
        if _already_stored(record, stored):
            report.skipped.append(record.id)
            continue
        try:
            new_id = write_record(
                runs_dir,
                record,
                candidates=functools.partial(import_id, record.id),
                imported_from=record.id,
            )
        except StoreError as exc:
            report.rejected.append((source, str(exc)))
            continue
        if record.tags or record.note:
            _annotate(runs_dir / new_id, record)
        report.imported.append((record.id, new_id))
        stored[new_id] = record.model_copy(update={"id": new_id})
    return report


def _annotate(run_path: Path, record: RunRecord) -> None:
    from bntui.store.annotations import Annotations, write_annotations

    try:
        write_annotations(run_path, Annotations(tags=record.tags, note=record.note))
    except (ValidationError, StoreError):
        pass  # the run itself is imported; tags that are not valid here are left out


def _content(record: RunRecord) -> str:
    """What two records must share to be the same run. A run exported while queued or running
    is stored as crashed (nothing runs it here), so that is the status it is compared with.
    Tags and notes are the user's, not the run's: they do not make it another run."""
    update: dict[str, object] = {"status": as_imported(record.status), "tags": [], "note": None}
    return record.model_copy(update=update).model_dump_json()


def _already_stored(record: RunRecord, stored: dict[str, StoredRun | RunRecord]) -> bool:
    """Whether the run is in the store under its id or one of the ids an import gives it
    (only those runs are compared, not the whole store)."""
    attempt = 0
    while (candidate := import_id(record.id, attempt)) in stored:
        entry = stored[candidate]
        found = entry if isinstance(entry, RunRecord) else entry.record  # imported just now, or a stored run
        if found is not None and _content(found) == _content(record.model_copy(update={"id": candidate})):
            return True
        attempt += 1
    return False
