"""Named experiment presets: settings that reproduce a known result in one flag."""

from __future__ import annotations

from typing import Any, Literal

PresetName = Literal["paper-fig1"]

# Ioffe & Szegedy (2015), Figure 1: an MNIST MLP with 3 fully connected hidden layers of 100
# sigmoid units, batch 60, trained by SGD, with and without BN; diagnostics every 10 steps show
# the 15th/50th/85th percentiles of one last-layer sigmoid input over training.
PRESETS: dict[str, dict[str, Any]] = {
    "paper-fig1": {
        "dataset": "mnist",
        "arch": "mlp",
        "hidden_sizes": [100, 100, 100],
        "activation": "sigmoid",
        "batch_size": 60,
        "optimizer": "sgd",
        "lr": 0.1,
        "sgd_momentum": 0.0,
        "bn": "both",
        "seeds": 1,
        "diagnostics_every": 10,
    },
}

# The preset falls back to the embedded subset when full MNIST is not on disk.
PRESET_FALLBACK_DATASET = {"paper-fig1": "mnist-mini"}


def preset_values(name: str, dataset_present: bool) -> dict[str, Any]:
    values = dict(PRESETS[name])
    if not dataset_present and name in PRESET_FALLBACK_DATASET:
        values["dataset"] = PRESET_FALLBACK_DATASET[name]
    return values
