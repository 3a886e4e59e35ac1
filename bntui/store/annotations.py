"""A run's tags and note: runs_dir/<run_id>/annotations.json, written atomically.

Kept apart from config.json and summary.json (the run's record, which its trainer owns): a tag
added while the run trains never races its writer, and a damaged annotations file costs only
the tags. Exported with the run (RunRecord.tags / .note) and written back on import."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bntui.store.layout import atomic_write_model, parse_json

ANNOTATIONS_FILE = "annotations.json"
MAX_NOTE = 10_000
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


def check_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise ValueError(f"tag {tag!r}: must be 1 to 64 letters, digits or _.+- (starting with a letter or digit)")
    return tag


class Annotations(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(default_factory=list)
    note: str | None = Field(None, max_length=MAX_NOTE)

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, tags: list[str]) -> list[str]:
        return sorted({check_tag(tag) for tag in tags})


def read_annotations(run_path: Path) -> Annotations:
    """The run's tags and note; none when the file is missing or unreadable."""
    try:
        return Annotations.model_validate(parse_json((run_path / ANNOTATIONS_FILE).read_bytes()))
    except (OSError, ValueError, ValidationError):
        return Annotations()


def write_annotations(run_path: Path, annotations: Annotations) -> None:
    atomic_write_model(run_path / ANNOTATIONS_FILE, annotations)


def change_tags(run_path: Path, add: Iterable[str] = (), remove: Iterable[str] = ()) -> Annotations:
    current = read_annotations(run_path)
    tags = (set(current.tags) | {check_tag(t) for t in add}) - set(remove)
    updated = current.model_copy(update={"tags": sorted(tags)})
    write_annotations(run_path, updated)
    return updated


def set_note(run_path: Path, note: str | None) -> Annotations:
    updated = read_annotations(run_path).model_copy(update={"note": note or None})
    Annotations.model_validate(updated.model_dump())  # the length limit
    write_annotations(run_path, updated)
    return updated
