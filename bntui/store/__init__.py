"""The run store: one folder per run under AppSettings.runs_dir (layout in store.layout).

Writing: RunWriter. Reading: list_runs / load_run -> StoredRun. Exchange: export_document,
write_export, import_runs. The export format: store.schema. Importing this package never
imports torch."""

from bntui.store.exchange import (
    ImportFileError,
    ImportReport,
    export_document,
    export_text,
    import_runs,
    write_export,
)
from bntui.store.layout import StoreError, StoreWriteError, is_store_run
from bntui.store.reader import (
    AmbiguousRun,
    RunNotFound,
    RunStoreReader,
    StoredRun,
    list_runs,
    load_model_state,
    load_run,
    runs_in_group,
)
from bntui.store.writer import RunWriter, ensure_runs_dir, remove_run

__all__ = [
    "AmbiguousRun",
    "ImportFileError",
    "ImportReport",
    "RunNotFound",
    "RunStoreReader",
    "RunWriter",
    "StoreError",
    "StoreWriteError",
    "StoredRun",
    "ensure_runs_dir",
    "export_document",
    "export_text",
    "import_runs",
    "is_store_run",
    "list_runs",
    "load_model_state",
    "load_run",
    "remove_run",
    "runs_in_group",
    "write_export",
]
