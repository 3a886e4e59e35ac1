"""Which runs can train as one packed model (bntui.engine.packed). No torch here: the launch
(a UI process) groups runs with these rules."""

from __future__ import annotations


def pack_key(config) -> str:
    """Equal for configs that can train in one pack: every setting but seed and BN on/off."""
    return config.model_copy(update={"seed": 0, "bn": True}).model_dump_json()


def pack_problem(config) -> str | None:
    """Why this run cannot join a pack, or None. The landscape measurement probes one model's
    loss along its gradient between backward and the update: a pack has no such model.
    (Diagnostics pack: each member has its own recorder, engine.packed.)"""
    if config.landscape_every > 0:
        return "landscape measurement on"
    return None
