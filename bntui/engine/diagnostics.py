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

Cost (it must stay a few percent of training at the default interval): a measurement is
about half a training step's work, so every part is kept to the few operations it needs.
The probe forward walks the model's layers itself instead of hooking them, stops after the
last hidden layer, and takes BatchNorm's batch mean and variance from the BatchNorm kernel
(torch.native_batch_norm returns them) instead of recomputing them. The weight figures are
a single torch._foreach_norm over gradients, snapshots and differences. Everything small
crosses to the host at once and the arithmetic on a few dozen numbers is done there. On
the CPU the pre-activation summaries run in numpy, whose BLAS dot products and partial
sort beat torch's reductions and sort several times at these sizes.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor, nn

from bntui.engine.data import derive_seed
from bntui.engine.events import Diagnostics
from bntui.engine.models import BATCH_NORM_TYPES, Classifier

PROBE_SIZE = 32
PERCENTILES = (0.15, 0.50, 0.85)
PROBE_UNIT = 0

PERCENTILE_KEYS = tuple(f"preact_p{round(q * 100)}" for q in PERCENTILES)
UNIT_PERCENTILE_KEYS = tuple(f"unit_p{round(q * 100)}" for q in PERCENTILES)
SUMMARY_KEYS = ("preact_mean", "preact_std", *PERCENTILE_KEYS, *UNIT_PERCENTILE_KEYS)
TENSOR_KEYS = (
    "grad_norm", "update_ratio", "gamma_mean", "beta_mean", "running_mean_gap", "running_var_gap",
)  # fmt: skip

# What the probe forward does at a module: run it, read its input as a hidden layer's
# pre-activation and then run it, or normalize with the batch's own statistics.
RUN, PREACTIVATION, NORMALIZE = "run", "preactivation", "normalize"


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
        self._weights = [layer.weight.weight for layer in self.layers]
        self._path = probe_path(model)
        self._before: list[torch.Tensor] | None = None

    def snapshot(self) -> None:
        with torch.no_grad():
            self._before = [weight.detach().clone() for weight in self._weights]

    def probe_forward(self) -> tuple[list[Tensor], list[tuple[Tensor, Tensor, int] | None]]:
        """Per hidden layer: its pre-activation on the probe batch, and its BatchNorm's
        (batch mean, 1 / sqrt(biased batch var + eps), values per channel) or None."""
        preacts: list = [None] * len(self.layers)
        norm_stats: list = [None] * len(self.layers)
        x = self.probe
        with torch.inference_mode():
            for module, role, index in self._path:
                if role == PREACTIVATION:
                    preacts[index] = x
                    x = module(x)
                elif role == NORMALIZE:
                    count = x.numel() // x.shape[1]
                    x, mean, invstd = torch.native_batch_norm(
                        x, module.weight, module.bias, None, None, True, 0.0, module.eps
                    )
                    if index is not None:
                        norm_stats[index] = (mean, invstd, count)
                else:
                    x = module(x)
        return preacts, norm_stats

    def measure(self, step: int, epoch: int) -> Diagnostics:
        preacts, norm_stats = self.probe_forward()
        on_cpu = self.probe.device.type == "cpu"
        with torch.inference_mode():
            small, read = self._weight_and_norm_tensors(norm_stats)
            if not on_cpu:  # summaries on the device, sent along with everything else
                small += [device_summary(pre) for pre in preacts]
            host = to_host(small)
        if on_cpu:
            summaries = [numpy_summary(pre.numpy()) for pre in preacts]
        else:
            summaries = [_summary_numbers(values) for values in host[len(host) - len(preacts) :]]
        rows = []
        for index, layer in enumerate(self.layers):
            row = _empty_row(layer)
            found = zip(SUMMARY_KEYS, summaries[index] or ())
            for key, value in (*found, *read(host, index).items()):
                row[key] = _finite_or_none(value)
            rows.append(row)
        self._before = None
        return Diagnostics(step=step, epoch=epoch, layers=rows)

    def _weight_and_norm_tensors(self, norm_stats):
        """([small tensors to read on the host], read(host arrays, layer index) -> {key:
        float}) for the gradient norms, update ratios and BatchNorm figures."""
        weights, before = self._weights, self._before
        with_grad = [i for i, weight in enumerate(weights) if weight.grad is not None]
        to_norm = [weights[i].grad for i in with_grad]
        if before is not None:
            to_norm += [*before, *torch._foreach_sub(weights, before)]
        small = [torch.stack(torch._foreach_norm(to_norm))] if to_norm else []
        grad_at = {layer: place for place, layer in enumerate(with_grad)}
        norm_at: dict[int, tuple[int, int]] = {}  # layer -> (first of its tensors, count)
        for index, layer in enumerate(self.layers):
            norm = layer.norm
            if norm_stats[index] is None or norm.running_mean is None:
                continue
            mean, invstd, count = norm_stats[index]
            parts = [mean, invstd, norm.running_mean, norm.running_var]
            if norm.weight is not None:
                parts += [norm.weight, norm.bias]
            norm_at[index] = (len(small), count)
            small += parts
        layers = len(weights)

        def read(host: list[np.ndarray], index: int) -> dict[str, float]:
            found = {}
            if to_norm:
                norms = host[0]
                if index in grad_at:
                    found["grad_norm"] = float(norms[grad_at[index]])
                if before is not None:
                    start = len(with_grad)
                    was, moved = float(norms[start + index]), float(norms[start + layers + index])
                    found["update_ratio"] = moved / was if was > 0 else math.nan
            if index in norm_at:
                first, count = norm_at[index]
                found.update(batch_norm_figures(host[first : first + 6], count, self.layers[index]))
            return found

        return small, read


def batch_norm_figures(parts: list[np.ndarray], count: int, layer) -> dict[str, float]:
    """Gamma and beta means and the gaps between the probe's batch statistics and the
    running ones, from (batch mean, invstd, running mean, running var[, gamma, beta])."""
    mean, invstd, running_mean, running_var = (p.astype(np.float64) for p in parts[:4])
    biased_var = 1.0 / np.square(invstd) - layer.norm.eps
    unbiased_var = biased_var * (count / max(count - 1, 1))
    found = {
        "running_mean_gap": float(np.abs(mean - running_mean).mean()),
        "running_var_gap": float(np.abs(unbiased_var - running_var).mean()),
    }
    if len(parts) == 6:
        found["gamma_mean"] = float(parts[4].mean(dtype=np.float64))
        found["beta_mean"] = float(parts[5].mean(dtype=np.float64))
    return found


def probe_path(model: Classifier) -> list[tuple[nn.Module, str, int | None]]:
    """(module, role, hidden layer index) for each module the probe forward runs, in order,
    up to the last one belonging to a hidden layer (the output layer is not needed). Dropout
    is left out (it is off while probing, as in models.batch_statistics_mode)."""
    roles: dict[int, tuple[str, int]] = {}
    for index, layer in enumerate(model.hidden_layers):
        roles[id(layer.activation)] = (PREACTIVATION, index)
        if layer.norm is not None:
            roles[id(layer.norm)] = (NORMALIZE, index)
    path: list[tuple[nn.Module, str, int | None]] = []
    needed = 0
    for module in model.layers:
        if isinstance(module, nn.Dropout):
            continue
        role, index = roles.get(id(module), (RUN, None))
        if isinstance(module, BATCH_NORM_TYPES):
            role = NORMALIZE
        path.append((module, role, index))
        if index is not None:
            needed = len(path)
    return path[:needed]


def to_host(tensors: list[Tensor]) -> list[np.ndarray]:
    """The tensors as numpy arrays, with one device-to-host copy off the CPU."""
    if not tensors:
        return []
    if all(t.device.type == "cpu" for t in tensors):
        return [t.detach().numpy() for t in tensors]
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors]).cpu().numpy()
    sizes = np.cumsum([t.numel() for t in tensors])[:-1]
    return np.split(flat, sizes)


def numpy_summary(values: np.ndarray) -> list[float] | None:
    """[mean, std (population), percentiles over all values, percentiles of unit
    PROBE_UNIT (for a conv layer: channel PROBE_UNIT over batch and positions)], or None
    when the values are not all finite."""
    flat = values.reshape(-1)
    count = flat.size
    # BLAS dot products: several times faster than numpy's own sum at these sizes, and
    # accurate enough (float32 accumulators spread over many lanes).
    mean = float(np.dot(flat, _ones(count))) / count
    centred = flat - np.float32(mean)
    var = float(np.dot(centred, centred)) / count
    if not (math.isfinite(mean) and math.isfinite(var)):  # overflow, or inf/nan values
        mean = float(flat.mean(dtype=np.float64))
        if not math.isfinite(mean):
            return None
        var = float(flat.var(dtype=np.float64))
    unit = np.ascontiguousarray(values[:, PROBE_UNIT]).reshape(-1)
    return [mean, math.sqrt(var), *percentiles_numpy(flat), *percentiles_numpy(unit)]


def device_summary(pre: Tensor) -> Tensor:
    """The same numbers as numpy_summary, as one tensor on the pre-activation's device
    (where sorting is cheap and copies are not)."""
    flat = pre.reshape(-1)
    std, mean = torch.std_mean(flat, correction=0)
    unit = pre[:, PROBE_UNIT].reshape(-1)
    return torch.cat([mean.reshape(1), std.reshape(1), percentiles_torch(flat), percentiles_torch(unit)])


def _summary_numbers(values: np.ndarray) -> list[float] | None:
    numbers = values.astype(np.float64).tolist()
    return numbers if math.isfinite(numbers[0]) else None


@functools.lru_cache(maxsize=16)
def _ones(count: int) -> np.ndarray:
    return np.ones(count, dtype=np.float32)


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


SELECT_SAMPLE = 4096  # above 2x this many values, narrow the search with a sample first


def order_statistics(values: np.ndarray, ranks: np.ndarray) -> list[float]:
    """The values of 0-based `ranks` in sorted order, exactly, without sorting everything.

    np.partition is a scalar loop (several ns per value and rank); comparisons are
    vectorized. So for large arrays: take an evenly strided sample, find in it a bracket
    around each rank's expected place, count the values below the bracket, and partition
    only the values inside. If a rank falls outside its bracket (an unlucky sample), fall
    back to partitioning everything, so the answer is always exact."""
    count = values.size
    if count <= 2 * SELECT_SAMPLE:
        ordered = np.partition(values, ranks)
        return [float(ordered[k]) for k in ranks]
    sample = values[:: count // SELECT_SAMPLE]
    size = len(sample)
    margin = 3.0 * math.sqrt(size * 0.25) + 2  # three standard deviations of a sample rank
    groups = _adjacent_groups(ranks.tolist())
    brackets = []
    for group in groups:
        low_at = int(group[0] / (count - 1) * (size - 1) - margin)
        high_at = int(math.ceil(group[-1] / (count - 1) * (size - 1) + margin))
        brackets.append((low_at, high_at))
    inside_sample = sorted({at for bracket in brackets for at in bracket if 0 <= at < size})
    chosen = np.partition(sample, inside_sample) if inside_sample else sample
    result = []
    for group, (low_at, high_at) in zip(groups, brackets):
        below = values < chosen[low_at] if low_at >= 0 else None
        upto = values <= chosen[high_at] if high_at < size else None
        if below is None:
            under = 0
            mask = upto
        else:
            under = int(np.count_nonzero(below))
            mask = ~below if upto is None else below ^ upto  # below implies upto
        inside = values if mask is None else np.compress(mask, values)
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
