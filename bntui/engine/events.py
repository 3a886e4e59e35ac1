"""Events a training run emits. Plain dataclasses that turn into JSON lines and back, so the
same stream feeds the run store (events.jsonl), the trainer process's stdout and the TUI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "started"
    device: str
    device_name: str
    torch_version: str
    parameters: int
    steps_per_epoch: int
    epochs: int
    train_size: int
    val_size: int
    test_size: int
    split_hash: str
    time: float
    # How the kernels were set up (absent from runs recorded before they were kept).
    cuda_version: str = ""  # CUDA runtime torch uses on the run's device; "" off CUDA
    cudnn_version: str = ""  # "" off CUDA
    deterministic: bool | None = None  # cuDNN's deterministic algorithms, no benchmarking
    tf32: bool | None = None  # TF32 allowed in convolutions or float32 matrix products
    cuda_graphs: bool | None = None  # the training step replayed as a CUDA graph


@dataclass(frozen=True)
class Progress(Event):
    kind: ClassVar[str] = "progress"
    epoch: int  # 1-based epoch the step belongs to
    step: int  # global optimizer step, 1-based
    train_loss: float  # mean loss since the previous progress point
    steps_per_second: float
    elapsed: float


@dataclass(frozen=True)
class EpochEnded(Event):
    kind: ClassVar[str] = "epoch"
    epoch: int
    step: int
    train_loss: float
    val_loss: float
    train_accuracy: float
    val_accuracy: float
    epoch_seconds: float
    elapsed: float
    # Validation with BatchNorm in train mode (batch statistics); None without BN.
    val_loss_batch_stats: float | None = None
    val_accuracy_batch_stats: float | None = None


@dataclass(frozen=True)
class Diagnostics(Event):
    """Per-layer statistics on the fixed probe batch (see engine.diagnostics)."""

    kind: ClassVar[str] = "diagnostics"
    step: int
    epoch: int
    layers: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Landscape(Event):
    """Santurkar et al.'s loss-landscape measurements at one step (see engine.landscape);
    None where the number was not finite."""

    kind: ClassVar[str] = "landscape"
    step: int
    epoch: int
    loss_min: float | None
    loss_max: float | None
    grad_change_min: float | None
    grad_change_max: float | None
    beta_smoothness: float | None


@dataclass(frozen=True)
class RunFinished(Event):
    kind: ClassVar[str] = "finished"
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    test_loss: float
    test_accuracy: float
    steps: int
    train_seconds: float
    total_seconds: float


@dataclass(frozen=True)
class RunFailed(Event):
    kind: ClassVar[str] = "failed"
    message: str


@dataclass(frozen=True)
class RunCancelled(Event):
    kind: ClassVar[str] = "cancelled"
    epochs_done: int
    step: int


@dataclass(frozen=True)
class RunDiverged(Event):
    kind: ClassVar[str] = "diverged"
    epoch: int
    step: int
    message: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted,
        Progress,
        EpochEnded,
        Diagnostics,
        Landscape,
        RunFinished,
        RunFailed,
        RunCancelled,
        RunDiverged,
    )
}

TERMINAL_EVENTS = (RunFinished, RunFailed, RunCancelled, RunDiverged)


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from its JSON form; unknown keys are ignored, unknown types raise."""
    cls = EVENT_TYPES.get(data.get("type", ""))
    if cls is None:
        raise ValueError(f"unknown event type {data.get('type')!r}")
    names = {f.name for f in fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in names})


@dataclass
class RunResult:
    """What `train` returns: the final status and every event of note."""

    # crashed: only a trainer process says so, when its run died under it (SLURM's SIGTERM)
    status: Literal["finished", "cancelled", "failed", "diverged", "crashed"]
    started: RunStarted | None = None
    epochs: list[EpochEnded] = field(default_factory=list)
    final: RunFinished | None = None
    message: str | None = None
