"""Turning one launch request (settings + BN on/off/both + number of seeds) into run configs."""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass

from bntui.config import BnChoice, RunConfig, TrainingFields, seed_range_problem


@dataclass(frozen=True)
class LaunchPlan:
    group: str | None  # shared by every run of a multi-run launch; runs pair up by seed
    configs: list[RunConfig]


def new_group_id(fields: TrainingFields) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"g{stamp}-{fields.dataset}-{fields.arch}-{secrets.token_hex(2)}"


def plan_runs(fields: TrainingFields, bn: BnChoice, seeds: int = 1, sweep: dict[str, list] | None = None) -> LaunchPlan:
    """Seeds run from `fields.seed` to `fields.seed + seeds - 1`. With `bn="both"` each seed
    gets a BN run then a no-BN run: same seed, so same initial shared weights and batch order.
    `sweep` (setting -> values, e.g. a preset's) gives those runs for every combination."""
    if seeds < 1:
        raise ValueError("seeds: must be at least 1")
    if problem := seed_range_problem(fields.seed, seeds):
        raise ValueError(f"seeds: {problem}")
    arms = (True, False) if bn == "both" else (bn == "on",)
    base = fields.model_dump(exclude={"seed"})
    names = list(sweep or {})
    combinations = list(itertools.product(*(sweep[name] for name in names))) if sweep else [()]
    configs = [
        RunConfig(**{**base, **dict(zip(names, values))}, seed=fields.seed + offset, bn=arm)
        for values in combinations
        for offset in range(seeds)
        for arm in arms
    ]
    group = new_group_id(fields) if len(configs) > 1 else None
    return LaunchPlan(group=group, configs=configs)
