"""Turning one launch request (settings + BN on/off/both + number of seeds) into run configs."""

from __future__ import annotations

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


def plan_runs(fields: TrainingFields, bn: BnChoice, seeds: int = 1) -> LaunchPlan:
    """Seeds run from `fields.seed` to `fields.seed + seeds - 1`. With `bn="both"` each seed
    gets a BN run then a no-BN run: same seed, so same initial shared weights and batch order."""
    if seeds < 1:
        raise ValueError("seeds: must be at least 1")
    if problem := seed_range_problem(fields.seed, seeds):
        raise ValueError(f"seeds: {problem}")
    arms = (True, False) if bn == "both" else (bn == "on",)
    base = fields.model_dump(exclude={"seed"})
    configs = [
        RunConfig(**base, seed=fields.seed + offset, bn=arm)
        for offset in range(seeds)
        for arm in arms
    ]
    group = new_group_id(fields) if len(configs) > 1 else None
    return LaunchPlan(group=group, configs=configs)
