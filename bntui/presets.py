"""Named experiment presets: settings that reproduce a known result in one flag.

A preset's "sweep" (setting -> values) launches one run per combination of those values (per
seed and BN arm), in one group; a flag the user gives for a swept setting replaces the sweep
over it."""

from __future__ import annotations

from typing import Any, Literal

PresetName = Literal["paper-fig1", "santurkar-landscape", "small-batch", "lr-sensitivity"]

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
    # Santurkar et al. (2018), section 3.1 and Fig. 4: VGG on CIFAR-10 with and without BN,
    # the same SGD learning rate (0.1) for both, batch 128, the loss landscape measured along
    # the gradient during training. Scaled to what trains here: LeNet-5 instead of VGG, plain
    # SGD without momentum or weight decay, no dropout (the measurement has it off anyway),
    # 10 epochs, measured every 25 steps.
    "santurkar-landscape": {
        "dataset": "cifar10",
        "arch": "lenet5",
        "activation": "relu",
        "dropout": 0.0,
        "batch_size": 128,
        "optimizer": "sgd",
        "lr": 0.1,
        "sgd_momentum": 0.0,
        "epochs": 10,
        "bn": "both",
        "seeds": 1,
        "landscape_every": 25,
    },
    # Where BatchNorm is known to suffer (Wu & He 2018, Fig. 1; Ioffe 2017): tiny batches, whose
    # statistics are noisy and far from the running ones used at test time. BatchNorm, GroupNorm
    # and Batch Renorm at batch 4 and 32 on LeNet-5; the sweep gives one run per combination.
    "small-batch": {
        "dataset": "mnist",
        "arch": "lenet5",
        "epochs": 5,
        "bn": "on",
        "seeds": 1,
        "norm_groups": 2,
        "sweep": {"batch_size": [4, 32], "norm": ["batch", "group", "renorm"]},
    },
    # Ioffe & Szegedy (2015), section 3.3; Santurkar et al. (2018), Fig. 1: BatchNorm allows much
    # higher learning rates. Plain SGD on a log grid from 1e-3 to 1, BN on and off, 3 seeds:
    # `bntui compare --group G` shows accuracy against the rate, one curve per arm.
    "lr-sensitivity": {
        "dataset": "mnist-mini",
        "arch": "mlp",
        "optimizer": "sgd",
        "sgd_momentum": 0.0,
        "epochs": 5,
        "bn": "both",
        "seeds": 3,
        "sweep": {"lr": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]},
    },
}

# The preset falls back to the embedded subset when its dataset is not on disk.
PRESET_FALLBACK_DATASET = {
    "paper-fig1": "mnist-mini", "santurkar-landscape": "mnist-mini", "small-batch": "mnist-mini",
}  # fmt: skip


def preset_values(name: str, dataset_present: bool) -> dict[str, Any]:
    values = dict(PRESETS[name])
    if not dataset_present and name in PRESET_FALLBACK_DATASET:
        values["dataset"] = PRESET_FALLBACK_DATASET[name]
    return values
