"""Which runs can train as one packed model (bntui.engine.packed). No torch here: the launch
(a UI process) groups runs with these rules."""

from __future__ import annotations


def pack_key(config) -> str:
    """Equal for configs that can train in one pack: every setting but seed and BN on/off."""
    return config.model_copy(update={"seed": 0, "bn": True}).model_dump_json()


def pack_problem(config) -> str | None:
    """Why this run cannot join a pack, or None. Diagnostics and the landscape measurement
    probe one model's gradients between backward and the update: a pack has no such model."""
    if config.diagnostics_every > 0:
        return "diagnostics on"
    if config.landscape_every > 0:
        return "landscape measurement on"
    return None
