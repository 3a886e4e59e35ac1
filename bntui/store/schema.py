"""The export schema: one versioned JSON document holding runs. These pydantic models are the
single source of truth for `bntui export`, `bntui import`, `bntui run --json` and `bntui schema`.

Non-finite numbers (a diverged run's NaN loss) are written as the strings "NaN", "Infinity" and
"-Infinity", so that an export is strict JSON (jq, JSON.parse); import reads them, and the bare
constants NaN / Infinity that earlier exports held, back to the same floats. Readers of schema
version 2 (pydantic, lax) take both spellings, so the version stays 2.

Regenerate docs/export-schema.json with: python -m bntui schema > docs/export-schema.json"""

from __future__ import annotations

import re
import math
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from bntui import __version__
from bntui.config import RunConfig

# 1: first release; 2: adds per-run BatchNorm diagnostics; 3: adds the norm settings (a run
# without them is a BatchNorm run) and the landscape measurements.
SCHEMA_VERSION = 3
SUPPORTED_SCHEMA_VERSIONS = (1, 2, 3)

# "queued": waiting in the runs dir's launch queue (bntui.store.queue) for a trainer.
RunStatus = Literal["queued", "running", "finished", "cancelled", "failed", "diverged", "crashed"]
TERMINAL_STATUSES = ("finished", "cancelled", "failed", "diverged")
ACTIVE_STATUSES = ("queued", "running")  # may still change; imported, nothing would run them


def as_imported(status: RunStatus) -> RunStatus:
    """The status a run gets in another store: one still queued or running there is crashed
    here, since nothing here trains it."""
    return "crashed" if status in ACTIVE_STATUSES else status


# Run ids become folder names: letters, digits, dot, dash, underscore; no leading dot.
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_run_id(value: str) -> str:
    if not RUN_ID_PATTERN.match(value) or ".." in value:
        raise ValueError("run id must be 1-128 letters, digits, '.', '-' or '_' (no path separators, no '..')")
    return value


def _check_accuracy(value: float) -> float:
    if not 0.0 <= value <= 1.0:  # also NaN
        raise ValueError(f"{value} is not an accuracy: must be between 0 and 1 (a fraction, not a percentage)")
    return value


# A fraction of examples classified right: 0.975, never 97.5 (a percentage) or NaN. A validator
# rather than ge/le so that the one-line error says what is allowed; the schema says it too.
Accuracy = Annotated[float, AfterValidator(_check_accuracy), Field(json_schema_extra={"minimum": 0, "maximum": 1})]


# A loss may be non-finite (a diverged run); the export spells those values as strings.
Loss = Annotated[
    float,
    WithJsonSchema({"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]}),
]

# Limits on what a stored number may be. Far beyond any real run, far below what the plots'
# arithmetic (ticks, scales, widths) can take: a file holding 1e30 steps is damaged, not drawn.
MAX_COUNT = 10**12  # steps, epochs, examples, parameters
MAX_SECONDS = 10.0**9  # about 31 years
MAX_TEXT = 10_000  # characters of one stored string (a message, a name)

# Steps, epochs, sizes: whole numbers from 0 to MAX_COUNT.
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


def _check_seconds(value: float) -> float:
    # Not required to be positive: a wall-clock duration goes negative when the clock is set back.
    if not (math.isfinite(value) and abs(value) <= MAX_SECONDS):
        raise ValueError(f"{value} is not a duration: must be finite and at most {MAX_SECONDS:.0e} seconds")
    return value


# A duration in seconds: finite, at most MAX_SECONDS either way.
Seconds = Annotated[
    float,
    AfterValidator(_check_seconds),
    Field(json_schema_extra={"minimum": -MAX_SECONDS, "maximum": MAX_SECONDS}),
]


def cap_text(text: str | None) -> str | None:
    """`text` cut to MAX_TEXT characters (ending in "..."): what the store writes of a message
    it did not make up itself (an exception's text), so that its own files always read back."""
    if text is None or len(text) <= MAX_TEXT:
        return text
    return text[: MAX_TEXT - 3] + "..."


_EARLIEST = datetime(1970, 1, 2, tzinfo=timezone.utc)
_LATEST = datetime(9998, 12, 31, tzinfo=timezone.utc)


def _check_time(value: datetime) -> datetime:
    # Year 1 or 9999 pass JSON but break local-time arithmetic (astimezone, timestamp()).
    aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    if not _EARLIEST <= aware <= _LATEST:
        raise ValueError(f"{value.isoformat()} is not a time bntui can store: must be between 1970 and 9998")
    return value


# A moment stored in a file (created, started_at, ended_at).
StoreTime = Annotated[datetime, AfterValidator(_check_time)]

# A clock reading in seconds since 1970 (RunStarted.time), within the same years.
Timestamp = Annotated[float, Field(ge=_EARLIEST.timestamp(), le=_LATEST.timestamp())]

# A file's schema_version: a whole number, not `true` (which equals 1 in Python).
SchemaVersion = StrictInt


class Strict(BaseModel):
    # NaN/Infinity as strings: a diverged run's losses survive export -> import, and the
    # document stays strict JSON.
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings", str_max_length=MAX_TEXT)


class Environment(Strict):
    python: str = ""
    torch: str = ""
    torchvision: str = ""
    device: str = ""
    device_name: str = ""
    platform: str = ""
    cpu_threads: Count = 0
    hostname: str = ""
    # Where the run was trained: "local" (a trainer process on this host) or "slurm", and
    # for SLURM the job id ("123_4": array job 123, task 4), so `bntui cancel` can scancel it.
    backend: str = ""
    slurm_job_id: str | None = None
    # The kernel settings the run trained under (absent, so unknown, in older records).
    cuda: str = ""  # CUDA runtime version on a CUDA device, else ""
    cudnn: str = ""
    deterministic: bool | None = None  # cuDNN's deterministic algorithms, no benchmarking
    tf32: bool | None = None  # TF32 allowed in convolutions or float32 matrix products
    cuda_graphs: bool | None = None  # the training step replayed as a CUDA graph
    # Trained as a member of a packed model (bntui.engine.packed): how many members it had
    # and their run ids; None: trained alone.
    packed: int | None = None
    packed_with: list[str] | None = None


_OPTIONAL_HISTORY = (
    "epoch_seconds",
    "step",
    "elapsed",
    "val_loss_batch_stats",
    "val_accuracy_batch_stats",
)


class History(Strict):
    """Per-epoch arrays, all of the same length. The optional ones (timings, steps, batch-stats
    validation) may instead be empty, for records that never had them."""

    epoch: list[Count] = Field(default_factory=list)
    train_loss: list[Loss] = Field(default_factory=list)
    val_loss: list[Loss] = Field(default_factory=list)
    train_accuracy: list[Accuracy] = Field(default_factory=list)
    val_accuracy: list[Accuracy] = Field(default_factory=list)
    epoch_seconds: list[Seconds] = Field(default_factory=list)
    step: list[Count] = Field(default_factory=list)
    elapsed: list[Seconds] = Field(default_factory=list)
    val_loss_batch_stats: list[Loss | None] = Field(default_factory=list)
    val_accuracy_batch_stats: list[Accuracy | None] = Field(default_factory=list)

    @model_validator(mode="after")
    def _same_length(self) -> History:
        lengths = {
            name: len(getattr(self, name))
            for name in ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy")
        }
        if len(set(lengths.values())) > 1:
            raise ValueError(f"history arrays differ in length: {lengths}")
        epochs = len(self.epoch)
        for name in _OPTIONAL_HISTORY:
            if len(getattr(self, name)) not in (0, epochs):
                raise ValueError(
                    f"history.{name} has {len(getattr(self, name))} entries: must be empty or one per epoch ({epochs})"
                )
        return self

    def __len__(self) -> int:
        return len(self.epoch)


class ProgressPoints(Strict):
    """Running train loss at each progress point (for step-resolution plots)."""

    step: list[Count] = Field(default_factory=list)
    epoch: list[Count] = Field(default_factory=list)
    train_loss: list[Loss] = Field(default_factory=list)
    elapsed: list[Seconds] = Field(default_factory=list)

    @model_validator(mode="after")
    def _same_length(self) -> ProgressPoints:
        lengths = {name: len(getattr(self, name)) for name in ("step", "epoch", "train_loss", "elapsed")}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"progress arrays differ in length: {lengths}")
        return self

    def __len__(self) -> int:
        return len(self.step)


class FinalMetrics(Strict):
    train_loss: Loss
    train_accuracy: Accuracy
    val_loss: Loss
    val_accuracy: Accuracy
    test_loss: Loss
    test_accuracy: Accuracy


class Timings(Strict):
    started_at: StoreTime | None = None
    ended_at: StoreTime | None = None
    train_seconds: Seconds | None = None
    total_seconds: Seconds | None = None
    steps: Count = 0


def _check_point(point: dict[str, Any]) -> dict[str, Any]:
    # The events.jsonl line this point becomes is checked by the reader's own event model, so
    # an import accepts exactly the points that read back (imported here: it imports this module).
    from bntui.store.event_model import check_diagnostics_point

    return check_diagnostics_point(point)


DiagnosticsPoint = Annotated[dict[str, Any], AfterValidator(_check_point)]


class DiagnosticsRecord(Strict):
    """BatchNorm diagnostics (schema version 2). `points` hold one entry per measurement: a
    Diagnostics event without its "type" key, i.e. {"step", "epoch", "layers": [...]}."""

    points: list[DiagnosticsPoint] = Field(default_factory=list)


class LandscapeRecord(Strict):
    """Loss-landscape measurements (schema version 3; see bntui.engine.landscape). `points`
    hold one entry per measurement: {"step", "epoch", "loss_min", "loss_max",
    "grad_change_min", "grad_change_max", "beta_smoothness"}, None where not finite."""

    points: list[dict[str, Any]] = Field(default_factory=list)


class RunRecord(Strict):
    id: str
    status: RunStatus
    message: str | None = None
    group: str | None = None
    config: RunConfig
    environment: Environment = Field(default_factory=Environment)
    split_hash: str = ""
    history: History = Field(default_factory=History)
    progress: ProgressPoints = Field(default_factory=ProgressPoints)
    final: FinalMetrics | None = None
    timings: Timings = Field(default_factory=Timings)
    diagnostics: DiagnosticsRecord | None = None
    landscape: LandscapeRecord | None = None
    # The user's tags and note (bntui.store.annotations): not the run's own record, but they
    # travel with it through export and import.
    tags: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=1000)
    note: str | None = None

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        return check_run_id(value)

    @field_validator("group")
    @classmethod
    def _safe_group(cls, value: str | None) -> str | None:
        return None if value is None else check_run_id(value)

    @model_validator(mode="after")
    def _no_empty_diagnostics(self) -> RunRecord:
        # One spelling for "no diagnostics", so a record compares equal after a round trip.
        if self.diagnostics is not None and not self.diagnostics.points:
            self.diagnostics = None
        if self.landscape is not None and not self.landscape.points:
            self.landscape = None
        return self


class ExportDocument(Strict):
    schema_version: SchemaVersion = SCHEMA_VERSION
    bntui_version: str = __version__
    created: StoreTime = Field(default_factory=lambda: datetime.now().astimezone())
    runs: list[RunRecord] = Field(default_factory=list)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in SUPPORTED_SCHEMA_VERSIONS:
            raise ValueError(
                f"schema_version {value} is not supported (this bntui reads "
                f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))})"
            )
        return value


def json_schema() -> dict[str, Any]:
    return ExportDocument.model_json_schema()
