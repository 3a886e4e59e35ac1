"""One filter grammar for the run list, in the CLI (`bntui runs --filter`) and the TUI (`/`).

A query is terms separated by spaces; a run matches when every term does:

    bn=on lr<0.01 norm=batch tag:paper status:finished id:2026

- SETTING OP VALUE, OP one of = != < <= > >=: any run setting (RunConfig's fields), and
  status, group and id. Numbers compare as numbers; on/off (or true/false) for yes-no settings.
- tag:NAME, status:STATUS, group:GROUP, id:PREFIX (the id starts with PREFIX).

A bad query raises FilterError with one line naming the term and what is allowed."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bntui.config import RunConfig

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le, ">=": operator.ge, "!=": operator.ne, "=": operator.eq, "<": operator.lt, ">": operator.gt,
}  # fmt: skip
_TERM = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)(<=|>=|!=|=|<|>)(.+)$")
_WORDS = ("tag", "status", "group", "id")
_RUN_FIELDS = ("status", "group", "id")
_ON = ("on", "true", "yes", "1")
_OFF = ("off", "false", "no", "0")


class FilterError(ValueError):
    """A query that cannot be read; the message is one line."""


@dataclass(frozen=True)
class RunFacts:
    """What a filter looks at in one run."""

    id: str
    status: str
    config: RunConfig | None
    group: str | None = None
    tags: Sequence[str] = field(default_factory=tuple)


Predicate = Callable[[RunFacts], bool]


def parse_filter(query: str) -> Predicate:
    """The predicate of a query (the empty query matches every run)."""
    terms = [_term(text) for text in query.split()]
    return lambda facts: all(term(facts) for term in terms)


def _term(text: str) -> Predicate:
    word, colon, value = text.partition(":")
    if colon and word.lower() in _WORDS:
        return _word_term(text, word.lower(), value)
    match = _TERM.match(text)
    if match is None:
        raise FilterError(
            f"filter {text!r}: write SETTING=VALUE (or != < <= > >=), tag:NAME, status:STATUS, group:GROUP or id:PREFIX"
        )
    name, op, raw = match[1].replace("-", "_"), match[2], match[3]
    if name in _RUN_FIELDS:
        if op not in ("=", "!="):
            raise FilterError(f"filter {text!r}: {name} takes = or != only")
        compare = _OPS[op]
        return lambda facts: compare(getattr(facts, name) or "", raw)
    if name not in RunConfig.model_fields:
        raise FilterError(
            f"filter {text!r}: unknown setting {name!r}; settings: "
            f"{', '.join(RunConfig.model_fields)}, status, group, id, tag"
        )
    value, kind = _value(text, name, raw)
    if kind != "number" and op not in ("=", "!="):
        raise FilterError(f"filter {text!r}: {name} takes = or != only")
    compare = _OPS[op]

    def matches(facts: RunFacts) -> bool:
        if facts.config is None:
            return False
        actual = getattr(facts.config, name)
        if kind == "text":
            actual = ",".join(map(str, actual)) if isinstance(actual, list) else str(actual)
        return compare(actual, value)

    return matches


def _word_term(text: str, word: str, value: str) -> Predicate:
    if not value:
        raise FilterError(f"filter {text!r}: give a value after {word}:")
    if word == "tag":
        return lambda facts: value in facts.tags
    if word == "id":
        return lambda facts: facts.id.startswith(value)
    return lambda facts: (getattr(facts, word) or "") == value


def _value(text: str, name: str, raw: str) -> tuple[Any, str]:
    """The value to compare with, and how: "number", "bool" or "text"."""
    annotation = str(RunConfig.model_fields[name].annotation)
    if "bool" in annotation:
        lowered = raw.lower()
        if lowered in _ON or lowered in _OFF:
            return lowered in _ON, "bool"
        raise FilterError(f"filter {text!r}: {name} is on or off")
    if annotation in ("<class 'int'>", "<class 'float'>") or annotation.startswith(("int |", "float |")):
        try:
            return float(raw), "number"
        except ValueError:
            raise FilterError(f"filter {text!r}: {name} takes a number") from None
    return raw, "text"


def matching(runs: Sequence[Any], query: str, tags_of: Callable[[Any], Sequence[str]]) -> list[Any]:
    """The stored runs (bntui.store.StoredRun) a query selects."""
    predicate = parse_filter(query)
    return [run for run in runs if predicate(facts_of(run, tags_of(run)))]


def facts_of(run: Any, tags: Sequence[str]) -> RunFacts:
    record = getattr(run, "brief", None)  # config and group: no need for the series
    return RunFacts(
        id=run.id,
        status=str(run.status),
        config=record.config if record is not None else None,
        group=record.group if record is not None else None,
        tags=tuple(tags),
    )
