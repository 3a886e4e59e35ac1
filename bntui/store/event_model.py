"""The one validating model of a stored event: an events.jsonl line, or a diagnostics point of
an imported record. The reader and import both use it, so a file import accepts always reads
back, and a line the reader rejects is never imported.

It is built from the event dataclasses of bntui.engine.events (their fields and defaults are
the shape), with the store's limits laid over them by field name (a step is a Count, an
accuracy an Accuracy...): a pydantic discriminated union on "type"."""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, create_model

from bntui.config import plain_message
from bntui.engine.events import EVENT_TYPES, EpochEnded, Event
from bntui.store.schema import MAX_TEXT, Accuracy, Count, Loss, Seconds, Timestamp

# The limits of each field, by name, whatever event it is in. A field not named here keeps the
# dataclass's own type (checked strictly: 1 is not a str, true is not an int).
_LIMITS: dict[str, Any] = {
    **dict.fromkeys(
        (
            "epoch",
            "step",
            "steps",
            "epochs",
            "epochs_done",
            "steps_per_epoch",
            "parameters",
            "train_size",
            "val_size",
            "test_size",
        ),
        Count,
    ),
    **dict.fromkeys(("train_loss", "val_loss", "test_loss"), Loss),
    **dict.fromkeys(("train_accuracy", "val_accuracy", "test_accuracy"), Accuracy),
    **dict.fromkeys(("epoch_seconds", "elapsed", "train_seconds", "total_seconds"), Seconds),
    "val_loss_batch_stats": Loss | None,
    "val_accuracy_batch_stats": Accuracy | None,
    "time": Timestamp,
}

# Epoch lines of runs imported from older exports may lack these; absent is allowed, null is not
# (unless the type says so), so the reader can tell "not recorded" from a value.
OPTIONAL_EPOCH_FIELDS = ("step", "epoch_seconds", "elapsed", "val_loss_batch_stats", "val_accuracy_batch_stats")

_ABSENT: Any = None  # the default of an optional epoch field; pydantic does not validate defaults


def _model_of(cls: type[Event]) -> type:
    hints = typing.get_type_hints(cls)
    definitions: dict[str, Any] = {"type": (Literal[cls.kind], ...)}
    for spec in dataclasses.fields(cls):
        annotation = _LIMITS.get(spec.name, hints[spec.name])
        if spec.default is not dataclasses.MISSING:
            default: Any = spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=spec.default_factory)
        elif cls is EpochEnded and spec.name in OPTIONAL_EPOCH_FIELDS:
            default = _ABSENT
        else:
            default = ...
        definitions[spec.name] = (annotation, default)
    return create_model(
        f"{cls.__name__}Line",
        __config__=ConfigDict(extra="ignore", strict=True, str_max_length=MAX_TEXT),
        **definitions,
    )


EVENT_MODELS: dict[str, type] = {kind: _model_of(cls) for kind, cls in EVENT_TYPES.items()}

_EVENT_LINE: TypeAdapter[Any] = TypeAdapter(
    Annotated[Union[tuple(EVENT_MODELS.values())], Field(discriminator="type")]  # type: ignore[arg-type]
)


class EventProblem(ValueError):
    """A line or point that is not a valid event; the message is one line."""


def is_known_kind(data: dict[str, Any]) -> bool:
    """Whether this bntui knows the line's kind (newer kinds are skipped, not refused)."""
    kind = data.get("type")
    return isinstance(kind, str) and kind in EVENT_TYPES


def validate_event(data: dict[str, Any]) -> Any:
    """The validated model of one event (its kind must be known); EventProblem otherwise.
    `model_fields_set` tells which optional epoch fields the line really had."""
    try:
        return _EVENT_LINE.validate_python(data)
    except ValidationError as exc:
        raise EventProblem(f"{data.get('type')} event: {_describe(exc)}") from None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"][1:])  # [0] is the kind
        if item["type"] == "missing":
            problems.append(f"without {where!r}")
        else:
            problems.append(f"{where}: {plain_message(item)}")
    return "; ".join(problems)


def to_event(model: Any) -> Event:
    """The engine's dataclass for a validated model (absent optional fields left at None)."""
    cls = EVENT_TYPES[model.type]
    return cls(**{spec.name: getattr(model, spec.name) for spec in dataclasses.fields(cls)})


def check_diagnostics_point(point: dict[str, Any]) -> dict[str, Any]:
    """A record's diagnostics point, checked as the events.jsonl line it will become."""
    if "type" in point:
        raise ValueError("a diagnostics point has no 'type' key")
    try:
        validate_event({**point, "type": "diagnostics"})
    except EventProblem as exc:
        raise ValueError(str(exc).removeprefix("diagnostics event: ")) from None
    return point
