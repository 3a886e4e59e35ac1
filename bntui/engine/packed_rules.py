"""Which runs can train as one packed model (bntui.engine.packed). No torch here: the launch
(a UI process) groups runs with these rules."""

from __future__ import annotations


def pack_key(config) -> str:
    """Equal for configs that can train in one pack: every setting but seed and BN on/off.
    (Measurements pack too: each member has its own recorders, engine.packed.)"""
    return config.model_copy(update={"seed": 0, "bn": True}).model_dump_json()
