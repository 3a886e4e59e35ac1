"""BatchNorm diagnostics: what the hidden layers' inputs to the non-linearity look like
during training, measured on one fixed probe batch from the validation set.

Measuring never changes training. The probe forward runs with BatchNorm using the probe
batch's own statistics but with running statistics and num_batches_tracked untouched, with
dropout off (so it draws no random numbers), under inference mode (so no gradients are
touched). The weights are only read. The probe batch is drawn once with its own generator.

Each `Diagnostics` event holds one dict per hidden layer, in network order:

    layer              "conv1", "fc1", ...          kind  "conv" | "linear"
    preact_mean, preact_std                         over the probe batch and all units
    preact_p15, preact_p50, preact_p85              percentiles over the batch and all units
    unit, unit_p15, unit_p50, unit_p85              percentiles of one fixed unit (unit 0; for a
                                                    conv layer: channel 0 over batch and positions)
    grad_norm          L2 norm of the weight's gradient at the last step
    update_ratio       ||W_after - W_before|| / ||W_before|| of the last optimizer step
    gamma_mean, beta_mean                           BatchNorm scale and shift (None without
                                                    BatchNorm or with affine off)
    running_mean_gap   mean |probe batch mean - running mean| of BatchNorm's input
    running_var_gap    mean |probe batch var (unbiased) - running var|   (None without BatchNorm)

Values are plain floats; a non-finite value is recorded as None (it would not be valid JSON).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from bntui.engine.data import derive_seed
from bntui.engine.events import Diagnostics
from bntui.engine.models import Classifier, batch_statistics_mode

PROBE_SIZE = 64
PERCENTILES = (0.15, 0.50, 0.85)
PROBE_UNIT = 0


class DiagnosticsRecorder:
    """Call `snapshot()` just before the optimizer step you want to measure, then
    `measure(step, epoch)` just after it."""

    def __init__(self, model: Classifier, val_x: torch.Tensor, seed: int, probe_size: int = PROBE_SIZE):
        if len(val_x) < 2:
            raise ValueError("diagnostics need at least 2 validation images for the probe batch")
        generator = torch.Generator().manual_seed(derive_seed(seed, "probe"))
        chosen = torch.randperm(len(val_x), generator=generator)[: min(probe_size, len(val_x))]
        self.probe = val_x.index_select(0, chosen.sort().values.to(val_x.device))
        self.model = model
        self.layers = model.hidden_layers
        self._before: list[torch.Tensor] | None = None

    def snapshot(self) -> None:
        self._before = [layer.weight.weight.detach().clone() for layer in self.layers]

    def probe_forward(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """({layer: pre-activation}, {layer: BatchNorm input}) on the probe batch."""
        preacts: dict[str, torch.Tensor] = {}
        norm_inputs: dict[str, torch.Tensor] = {}
        handles = []

        def keep(store: dict[str, torch.Tensor], name: str):
            def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output) -> None:
                store[name] = inputs[0]

            return hook

        for layer in self.layers:
            handles.append(layer.activation.register_forward_hook(keep(preacts, layer.name)))
            if layer.norm is not None:
                handles.append(layer.norm.register_forward_hook(keep(norm_inputs, layer.name)))
        try:
            with torch.inference_mode(), batch_statistics_mode(self.model):
                self.model(self.probe)
        finally:
            for handle in handles:
                handle.remove()
        return preacts, norm_inputs

    def measure(self, step: int, epoch: int) -> Diagnostics:
        preacts, norm_inputs = self.probe_forward()
        rows = [_empty_row(layer) for layer in self.layers]
        pending: list[tuple[dict, tuple[str, ...], torch.Tensor]] = []  # (row, keys, values)
        with torch.inference_mode():
            for index, (layer, row) in enumerate(zip(self.layers, rows)):
                row.update(preactivation_summary(preacts[layer.name]))
                pending.extend((row, keys, values) for keys, values in self._layer_tensors(index, layer, norm_inputs))
            # One device-to-host copy for the remaining numbers of this measurement.
            numbers = iter(torch.cat([values.reshape(-1).float() for _, _, values in pending]).tolist())
        for row, keys, _ in pending:
            for key in keys:
                row[key] = _finite_or_none(next(numbers))
        self._before = None
        return Diagnostics(step=step, epoch=epoch, layers=rows)

    def _layer_tensors(self, index, layer, norm_inputs) -> list[tuple[tuple[str, ...], torch.Tensor]]:
        """[(keys, tensor of one value per key)] for one layer's weights and BatchNorm,
        left on the device."""
        measured = []
        weight = layer.weight.weight
        if weight.grad is not None:
            measured.append((("grad_norm",), weight.grad.norm()))
        if self._before is not None:
            before = self._before[index]
            measured.append((("update_ratio",), (weight - before).norm() / before.norm()))
        norm = layer.norm
        if norm is not None:
            if norm.weight is not None:
                means = torch.stack([norm.weight.mean(), norm.bias.mean()])
                measured.append((("gamma_mean", "beta_mean"), means))
            inputs = norm_inputs[layer.name]
            dims = [d for d in range(inputs.ndim) if d != 1]
            batch_var, batch_mean = torch.var_mean(inputs, dim=dims)
            gaps = torch.stack(
                [
                    (batch_mean - norm.running_mean).abs().mean(),
                    (batch_var - norm.running_var).abs().mean(),
                ]
            )
            measured.append((("running_mean_gap", "running_var_gap"), gaps))
        return measured


def preactivation_summary(pre: torch.Tensor) -> dict[str, float | None]:
    """Mean, std (population) and percentiles over the batch and all units, and percentiles
    of unit PROBE_UNIT. Computed on the host with numpy: its partial sort (np.partition) is
    several times faster than torch's full sort for the few order statistics needed."""
    values = pre.detach().float().cpu().numpy()
    everything = values.reshape(-1)
    mean = float(everything.mean(dtype=np.float64))
    summary: dict[str, float | None] = {key: None for key in SUMMARY_KEYS}
    if not math.isfinite(mean):  # a NaN or inf anywhere: the order statistics mean nothing
        summary["preact_mean"] = None
        return summary
    summary["preact_mean"] = mean
    summary["preact_std"] = float(everything.std(dtype=np.float64))
    unit = np.ascontiguousarray(values[:, PROBE_UNIT]).reshape(-1)
    for keys, numbers in ((PERCENTILE_KEYS, percentiles(everything)), (UNIT_PERCENTILE_KEYS, percentiles(unit))):
        summary.update(zip(keys, numbers))
    return summary


PERCENTILE_KEYS = tuple(f"preact_p{round(q * 100)}" for q in PERCENTILES)
UNIT_PERCENTILE_KEYS = tuple(f"unit_p{round(q * 100)}" for q in PERCENTILES)
SUMMARY_KEYS = ("preact_mean", "preact_std", *PERCENTILE_KEYS, *UNIT_PERCENTILE_KEYS)
TENSOR_KEYS = (
    "grad_norm", "update_ratio", "gamma_mean", "beta_mean", "running_mean_gap", "running_var_gap",
)  # fmt: skip


def percentiles(values: np.ndarray) -> list[float]:
    """torch.quantile(values, PERCENTILES) with its default linear interpolation, the same
    arithmetic (float32 ranks, lerp between the two neighbouring order statistics) on finite
    float32 values, but selecting the order statistics with a partial sort."""
    ranks = torch.tensor(PERCENTILES, dtype=torch.float32) * (values.size - 1)
    below, above = ranks.long(), ranks.ceil().long()
    wanted = np.unique(np.concatenate([below.numpy(), above.numpy()]))
    ordered = np.partition(values, wanted)
    lower = torch.from_numpy(ordered[below.numpy()])
    upper = torch.from_numpy(ordered[above.numpy()])
    return torch.lerp(lower, upper, ranks - below).tolist()


def _empty_row(layer) -> dict:
    row = {
        "layer": layer.name,
        "kind": "conv" if isinstance(layer.weight, nn.Conv2d) else "linear",
        "unit": PROBE_UNIT,
    }
    for key in (*SUMMARY_KEYS, *TENSOR_KEYS):
        row[key] = None
    return row


def _finite_or_none(number: float) -> float | None:
    return number if math.isfinite(number) else None
