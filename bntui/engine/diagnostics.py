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

import functools
import math

import numpy as np
import torch
from torch import Tensor, nn

from bntui.engine.data import derive_seed
from bntui.engine.events import Diagnostics
from bntui.engine.models import Classifier, batch_statistics_mode

PROBE_SIZE = 32
PERCENTILES = (0.15, 0.50, 0.85)
PROBE_UNIT = 0


class DiagnosticsRecorder:
    """Call `snapshot()` just before the optimizer step you want to measure, then
    `measure(step, epoch)` just after it."""

    def __init__(
        self, model: Classifier, val_x: torch.Tensor, seed: int, probe_size: int = PROBE_SIZE
    ):
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
                for keys, values in self._layer_tensors(index, layer, norm_inputs):
                    pending.append((row, keys, values))
            # One device-to-host copy for the remaining numbers of this measurement.
            flat = [values.reshape(-1).float() for _, _, values in pending]
            numbers = iter(torch.cat(flat).tolist() if flat else [])
        for row, keys, _ in pending:
            for key in keys:
                row[key] = _finite_or_none(next(numbers))
        self._before = None
        return Diagnostics(step=step, epoch=epoch, layers=rows)

    def _layer_tensors(self, index, layer, norm_inputs) -> list[tuple[tuple[str, ...], Tensor]]:
        """[(keys, tensor of one value per key)] for one layer's weights and BatchNorm,
        left on the device."""
        measured = []
        weight = layer.weight.weight
        if weight.grad is not None:
            measured.append((("grad_norm",), weight.grad.norm()))
        if self._before is not None:
            before = self._before[index]
            measured.append((("update_ratio",), torch.dist(weight, before) / before.norm()))
        norm = layer.norm
        if norm is not None:
            if norm.weight is not None:
                means = torch.stack([norm.weight.mean(), norm.bias.mean()])
                measured.append((("gamma_mean", "beta_mean"), means))
            batch_mean, batch_var = channel_mean_var(norm_inputs[layer.name])
            gaps = torch.stack([batch_mean - norm.running_mean, batch_var - norm.running_var])
            gaps = gaps.abs().mean(dim=1)
            measured.append((("running_mean_gap", "running_var_gap"), gaps))
        return measured


def preactivation_summary(pre: torch.Tensor) -> dict[str, float | None]:
    """Mean, std (population) and percentiles over the batch and all units, and percentiles
    of unit PROBE_UNIT (for a conv layer: channel PROBE_UNIT over batch and positions).
    All None when a value is not finite. On the CPU this runs in numpy, whose partial sort
    (np.partition) finds the few order statistics needed several times faster than a full
    sort; on a GPU it runs on the device, where sorting is cheap and copies are not."""
    if pre.device.type == "cpu":
        values = pre.detach().numpy()
        flat = values.reshape(-1)
        mean = float(flat.mean(dtype=np.float64))
        if not math.isfinite(mean):
            return dict.fromkeys(SUMMARY_KEYS)
        numbers = [mean, float(flat.std(dtype=np.float64))]
        numbers += percentiles_numpy(flat) + percentiles_numpy(values[:, PROBE_UNIT].reshape(-1))
    else:
        flat = pre.detach().reshape(-1)
        std, mean = torch.std_mean(flat, correction=0)
        unit = pre.detach()[:, PROBE_UNIT].reshape(-1)
        parts = [mean.reshape(1), std.reshape(1), percentiles_torch(flat), percentiles_torch(unit)]
        numbers = torch.cat(parts).double().tolist()
        if not math.isfinite(numbers[0]):
            return dict.fromkeys(SUMMARY_KEYS)
    return dict(zip(SUMMARY_KEYS, numbers))


PERCENTILE_KEYS = tuple(f"preact_p{round(q * 100)}" for q in PERCENTILES)
UNIT_PERCENTILE_KEYS = tuple(f"unit_p{round(q * 100)}" for q in PERCENTILES)
SUMMARY_KEYS = ("preact_mean", "preact_std", *PERCENTILE_KEYS, *UNIT_PERCENTILE_KEYS)
TENSOR_KEYS = (
    "grad_norm", "update_ratio", "gamma_mean", "beta_mean", "running_mean_gap", "running_var_gap",
)  # fmt: skip


@functools.lru_cache(maxsize=64)
def _ranks(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where torch.quantile's linear interpolation looks for `count` values: float32 ranks
    q * (count - 1), the order statistics below and above, and the weight between them."""
    ranks = np.asarray(PERCENTILES, dtype=np.float32) * np.float32(count - 1)
    below, above = ranks.astype(np.int64), np.ceil(ranks).astype(np.int64)
    wanted = np.unique(np.concatenate([below, above]))
    return below, above, (ranks - below).astype(np.float64), wanted


def percentiles_numpy(values: np.ndarray) -> list[float]:
    """torch.quantile(values, PERCENTILES) for finite values (same ranks and interpolation,
    to float rounding), selecting only the order statistics needed."""
    below, above, weight, wanted = _ranks(values.size)
    found = dict(zip(wanted.tolist(), order_statistics(values, wanted)))
    lower = np.array([found[k] for k in below.tolist()], dtype=np.float64)
    upper = np.array([found[k] for k in above.tolist()], dtype=np.float64)
    return (lower + weight * (upper - lower)).tolist()


SELECT_SAMPLE = 4096  # above this many values, narrow the search with a sample first


def order_statistics(values: np.ndarray, ranks: np.ndarray) -> list[float]:
    """The values of 0-based `ranks` in sorted order, exactly, without sorting everything.

    np.partition is a scalar loop (several ns per value and rank); comparisons are
    vectorized. So for large arrays: sort an evenly strided sample, take a bracket around
    each rank's expected place in it, count the values below the bracket, and partition only
    the values inside. If a rank falls outside its bracket (an unlucky sample), fall back to
    partitioning everything, so the answer is always exact."""
    count = values.size
    if count <= 4 * SELECT_SAMPLE:
        ordered = np.partition(values, ranks)
        return [float(ordered[k]) for k in ranks]
    sample = np.sort(values[:: count // SELECT_SAMPLE])
    size = len(sample)
    margin = 3.0 * math.sqrt(size * 0.25) + 2  # three standard deviations of a sample rank
    result = []
    for group in _adjacent_groups(ranks.tolist()):
        expected = group[0] / (count - 1) * (size - 1)
        low_at, high_at = int(expected - margin), int(math.ceil(expected + margin))
        low = sample[low_at] if low_at >= 0 else -np.inf
        high = sample[high_at] if high_at < size else np.inf
        under = int(np.count_nonzero(values < low))
        inside = np.compress((values >= low) & (values <= high), values)  # faster than a[mask]
        if not (under <= group[0] and group[-1] < under + inside.size):
            ordered = np.partition(values, ranks)
            return [float(ordered[k]) for k in ranks]
        ordered = np.partition(inside, [rank - under for rank in group])
        result.extend(float(ordered[rank - under]) for rank in group)
    return result


def _adjacent_groups(ranks: list[int]) -> list[list[int]]:
    """[3, 4, 9, 10] -> [[3, 4], [9, 10]]: neighbouring ranks share one bracket."""
    groups: list[list[int]] = []
    for rank in ranks:
        if groups and rank - groups[-1][-1] <= 1:
            groups[-1].append(rank)
        else:
            groups.append([rank])
    return groups


def percentiles_torch(values: torch.Tensor) -> torch.Tensor:
    """The same on the device (finite values)."""
    below, above, weight, _ = _ranks(values.numel())
    ordered = values.sort().values
    device = values.device
    lower = ordered[torch.from_numpy(below).to(device)]
    upper = ordered[torch.from_numpy(above).to(device)]
    return torch.lerp(lower, upper, torch.from_numpy(weight).to(device, values.dtype))


def channel_mean_var(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and unbiased variance over every dimension but 1, as BatchNorm
    computes them for its running statistics (two passes: much faster than torch.var_mean
    over non-contiguous dimensions on the CPU)."""
    dims = [d for d in range(inputs.ndim) if d != 1]
    count = inputs.numel() // inputs.shape[1]
    mean = inputs.mean(dim=dims, keepdim=True)
    var = (inputs - mean).square().sum(dim=dims) / max(count - 1, 1)
    return mean.reshape(-1), var


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
