"""The lab's two networks, with normalization (BatchNorm or a variant, engine.norms) as a switch.

Paired initialisation: layers are created in the same order with and without BatchNorm,
and BatchNorm layers draw no random numbers (their weights start at 1 and 0), so after
`torch.manual_seed(s)` both arms start from identical weights in every layer they share.
Seed before calling `build_model`; it does not seed itself.
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bntui.engine.norms import make_norm

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
BATCH_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(frozen=True)
class HiddenLayer:
    """One hidden layer, for diagnostics. The pre-activation is the input of `activation`
    (after BatchNorm when BatchNorm sits before the non-linearity): the diagnostics probe walks
    the layers itself and reads it there (no hooks)."""

    name: str
    weight: nn.Module  # nn.Linear or nn.Conv2d
    # BatchNorm1d/2d (or Ghost BN, Batch Renorm: subclasses), or None without one (no norm,
    # GroupNorm, LayerNorm: these sit in the model's layers but have no batch statistics).
    norm: nn.Module | None
    activation: nn.Module


class Classifier(nn.Module):
    """A stack of named layers, then log-softmax (the lab trains with NLL loss)."""

    def __init__(self, layers: OrderedDict[str, nn.Module], hidden: list[HiddenLayer]):
        super().__init__()
        self.layers = nn.Sequential(layers)
        # A plain list (not registered again): the modules already live in self.layers.
        self.hidden_layers: list[HiddenLayer] = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.layers(x), dim=1)


class _Builder:
    """Collects layers in order and records each hidden layer's parts."""

    def __init__(self, config):
        self.config = config
        self.layers: OrderedDict[str, nn.Module] = OrderedDict()
        self.hidden: list[HiddenLayer] = []

    def add(self, name: str, module: nn.Module) -> None:
        self.layers[name] = module

    def hidden_block(self, index: int, weight: nn.Module, features: int, conv: bool) -> None:
        """weight -> [norm] -> activation (placement `before`), or weight -> activation -> [norm]
        (`after`); the norm is config.norm (see engine.norms) where config.bn is on."""
        config = self.config
        self.add(f"{'conv' if conv else 'fc'}{index}", weight)
        norm = make_norm(config, features, conv) if config.bn else None
        activation = ACTIVATIONS[config.activation]()
        if norm is not None and config.bn_placement == "before":
            self.add(f"bn{index}", norm)
        self.add(f"act{index}", activation)
        if norm is not None and config.bn_placement == "after":
            self.add(f"bn{index}", norm)
        name = f"{'conv' if conv else 'fc'}{index}"
        # Diagnostics read batch statistics: only BatchNorm and its variants have them.
        batch_norm = norm if isinstance(norm, BATCH_NORM_TYPES) else None
        self.hidden.append(HiddenLayer(name, weight, batch_norm, activation))

    def dropout(self, index: int) -> None:
        if self.config.dropout > 0:
            self.add(f"drop{index}", nn.Dropout(self.config.dropout))

    def build(self) -> Classifier:
        return Classifier(self.layers, self.hidden)


def build_model(config, image_shape: tuple[int, ...], num_classes: int = 10) -> Classifier:
    """`config.arch` for images of `image_shape` (C, H, W). Draws from torch's global RNG."""
    if config.arch == "mlp":
        return _mlp(config, image_shape, num_classes)
    if config.arch == "lenet5":
        return _lenet5(config, image_shape, num_classes)
    raise ValueError(f"arch: must be mlp or lenet5, not {config.arch!r}")


def _mlp(config, image_shape: tuple[int, ...], num_classes: int) -> Classifier:
    builder = _Builder(config)
    builder.add("flatten", nn.Flatten())
    width = math.prod(image_shape)
    for index, size in enumerate(config.hidden_sizes, start=1):
        builder.hidden_block(index, nn.Linear(width, size), size, conv=False)
        builder.dropout(index)
        width = size
    builder.add("out", nn.Linear(width, num_classes))
    return builder.build()


def lenet5_flat_features(image_shape: tuple[int, ...]) -> int:
    """Features after conv5 -> pool2 -> conv5 -> pool2: 16*5*5 for 32x32, 16*4*4 for 28x28."""
    _, height, width = image_shape
    side = lambda n: ((n - 4) // 2 - 4) // 2  # noqa: E731
    if side(height) < 1 or side(width) < 1:
        raise ValueError(f"lenet5 needs images of at least 16x16 pixels, not {height}x{width}")
    return 16 * side(height) * side(width)


def _lenet5(config, image_shape: tuple[int, ...], num_classes: int) -> Classifier:
    builder = _Builder(config)
    builder.hidden_block(1, nn.Conv2d(image_shape[0], 6, 5), 6, conv=True)
    builder.add("pool1", nn.MaxPool2d(2))
    builder.hidden_block(2, nn.Conv2d(6, 16, 5), 16, conv=True)
    builder.add("pool2", nn.MaxPool2d(2))
    builder.add("flatten", nn.Flatten())
    # The lab applies dropout after the two hidden dense layers only.
    builder.hidden_block(3, nn.Linear(lenet5_flat_features(image_shape), 120), 120, conv=False)
    builder.dropout(3)
    builder.hidden_block(4, nn.Linear(120, 84), 84, conv=False)
    builder.dropout(4)
    builder.add("out", nn.Linear(84, num_classes))
    return builder.build()


def batch_norm_layers(model: nn.Module) -> list[nn.Module]:
    return [module for module in model.modules() if isinstance(module, BATCH_NORM_TYPES)]


@contextlib.contextmanager
def batch_statistics_mode(model: nn.Module) -> Iterator[None]:
    """Forward passes inside normalize with the batch's own statistics (BatchNorm's train
    behaviour) but change nothing: dropout is off (so no random numbers are drawn) and the
    running statistics and num_batches_tracked stay as they are (with track_running_stats
    off, BatchNorm neither reads nor updates its buffers). Other layers behave the same in
    either mode and are left alone; the previous modes come back on exit. Called at every
    diagnostics probe, so it touches only the layers it must."""
    switched = [m for m in model.modules() if isinstance(m, (*BATCH_NORM_TYPES, nn.Dropout))]
    saved = [(m.training, getattr(m, "track_running_stats", None)) for m in switched]
    for module in switched:
        if isinstance(module, nn.Dropout):
            module.training = False
        else:
            module.training, module.track_running_stats = True, False
    try:
        yield
    finally:
        for module, (training, tracked) in zip(switched, saved):
            module.training = training
            if tracked is not None:
                module.track_running_stats = tracked


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
