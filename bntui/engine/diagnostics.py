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

Cost: at the default interval measuring must stay within a few percent of training. A
measurement has about as many operations as a training step (a forward pass of the probe,
statistics, some norms), and right after a step the code and data of each one it calls
first have left the CPU's caches, so the number of operations counts more than their size.
Hence the probe forward walks the model's layers itself (no hooks, no mode switching),
skips what measures nothing (dropout, the output layer), computes leading reshapes once,
replaces MaxPool2d(2) by two elementwise maxima (ReLU then pool by pool then ReLU, on a
quarter of the values) and takes BatchNorm's batch statistics from the BatchNorm kernel
(torch.native_batch_norm returns them) instead of recomputing them. On the CPU each
pre-activation is summarized in numpy while it is still in the cache: BLAS dot products
for the mean and std, and an exact selection of the percentiles that partitions only a
few hundred values (see order_statistics); the weight norms are BLAS dot products too,
and the few hundred BatchNorm numbers are read as Python floats. On an accelerator the
statistics are computed on the device and cross to the host in one copy.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Callable

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
NUMBER_KEYS = (*SUMMARY_KEYS, *TENSOR_KEYS)

# What the probe forward does at a step of its path: run the module, read its input as a
# hidden layer's pre-activation (and run it, unless nothing after it is needed), or normalize
# with the batch's own statistics.
RUN, PREACTIVATION, NORMALIZE = "run", "preactivation", "normalize"
RESHAPES = (nn.Flatten, nn.Unflatten, nn.Identity)  # no weights, no randomness


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
        # Leading reshapes (the MLP's Flatten) give the same result every time: done once.
        self._probe_input = self.probe
        while self._path and self._path[0][1] == RUN and type(self._path[0][0]) in RESHAPES:
            with torch.no_grad():
                self._probe_input = self._path[0][0](self._probe_input)
            self._path = self._path[1:]
        # The BatchNorm layers whose figures are reported (those with running statistics).
        self._norms = [
            (index, layer.norm)
            for index, layer in enumerate(self.layers)
            if layer.norm is not None and layer.norm.running_mean is not None
        ]
        self._templates = [_empty_row(layer) for layer in self.layers]
        self._before: tuple[list, list] | None = None  # (weight copies, their norms)
        # The arithmetic runs on the host, in numpy and plain Python, when the model is on
        # the CPU; on an accelerator it stays on the device until one copy at the end.
        # (Tests switch this off to run the accelerator's path on the CPU.)
        self.on_host = self.probe.device.type == "cpu"

    def snapshot(self) -> None:
        """Copy the hidden layers' weights for the update ratio of the coming optimizer
        step, and take the copies' norms while they are in the cache."""
        with torch.no_grad():
            before = [weight.detach().clone() for weight in self._weights]
            if self.on_host:
                self._before = (before, [_norm(_flat_numpy(copy)) for copy in before])
            else:
                self._before = (before, list(torch._foreach_norm(before)))

    def probe_forward(self, summarize: Callable[[Tensor], object] | None = None):
        """Per hidden layer: its pre-activation on the probe batch; its BatchNorm's (batch
        mean, 1 / sqrt(biased batch var + eps), values per channel) or None; and
        `summarize(pre-activation)` or None. Summarizing as soon as a pre-activation exists
        finds it in the cache (reading it back after the whole forward is much slower)."""
        layers = len(self.layers)
        preacts: list = [None] * layers
        norm_stats: list = [None] * layers
        summaries: list = [None] * layers
        x = self._probe_input
        with torch.inference_mode():
            for run, role, index in self._path:
                if role == NORMALIZE:
                    count = x.numel() // x.shape[1]
                    x, mean, invstd = torch.native_batch_norm(
                        x, run.weight, run.bias, None, None, True, 0.0, run.eps
                    )
                    if index is not None:
                        norm_stats[index] = (mean, invstd, count)
                    continue
                if role == PREACTIVATION:
                    preacts[index] = x
                    if summarize is not None:
                        summaries[index] = summarize(x)
                if run is not None:
                    x = run(x)
        return preacts, norm_stats, summaries

    def measure(self, step: int, epoch: int) -> Diagnostics:
        on_host = self.on_host
        with torch.inference_mode():  # first, while the optimizer step left them in the cache
            with_grad, norms = self._weight_norms()
        preacts, norm_stats, summaries = self.probe_forward(host_summary if on_host else None)
        with torch.inference_mode():
            small = [norms] if isinstance(norms, Tensor) else []
            for index, norm in self._norms:
                mean, invstd, _ = norm_stats[index]
                small += [mean, invstd, norm.running_mean, norm.running_var]
                if norm.weight is not None:
                    small += [norm.weight, norm.bias]
            if not on_host:  # summaries on the device, sent along with everything else
                small += [device_summary(pre) for pre in preacts]
            host = iter(to_host(small))  # read back in the order written above
        rows = [dict(template) for template in self._templates]
        if norms is not None:
            self._read_weight_norms(rows, with_grad, norms if on_host else next(host))
        for index, norm in self._norms:
            parts = [next(host) for _ in range(6 if norm.weight is not None else 4)]
            rows[index].update(batch_norm_figures(parts, norm_stats[index][2], norm.eps))
        for row, numbers in zip(rows, summaries):
            if not on_host:
                numbers = _summary_numbers(next(host))
            if numbers is not None:
                row.update(zip(SUMMARY_KEYS, numbers))
            for key in NUMBER_KEYS:
                value = row[key]
                if value is not None and not math.isfinite(value):
                    row[key] = None
        self._before = None
        return Diagnostics(step=step, epoch=epoch, layers=rows)

    def _weight_norms(self) -> tuple[list[int], list[float] | Tensor | None]:
        """(the layers whose weight has a gradient; the norms of those gradients, then with a
        snapshot each layer's ||W_before - W_after|| and then its ||W_before||, as floats on
        the host or one tensor on the device; None when there is nothing to measure)."""
        weights = self._weights
        with_grad = [index for index, weight in enumerate(weights) if weight.grad is not None]
        grads = [weights[index].grad for index in with_grad]
        before, before_norms = self._before or ([], [])
        if self.on_host:
            norms = [_norm(_flat_numpy(grad)) for grad in grads]
            for copy, weight in zip(before, weights):
                moved = _flat_numpy(copy)
                np.subtract(moved, _flat_numpy(weight), out=moved)  # the copy becomes the step
                norms.append(_norm(moved))
            norms += before_norms
            return with_grad, norms or None
        if before:
            torch._foreach_sub_(before, weights)  # the copies become the steps taken
        norms = [*torch._foreach_norm(grads + before), *before_norms] if grads + before else []
        return with_grad, torch.stack(norms) if norms else None

    def _read_weight_norms(self, rows: list[dict], with_grad: list[int], norms: list[float]):
        for place, index in enumerate(with_grad):
            rows[index]["grad_norm"] = norms[place]
        if self._before is not None:
            layers, start = len(rows), len(with_grad)
            for index, row in enumerate(rows):
                moved, was = norms[start + index], norms[start + layers + index]
                row["update_ratio"] = moved / was if was > 0 else math.nan


def _flat_numpy(tensor: Tensor) -> np.ndarray:
    return tensor.detach().numpy().reshape(-1)


def _norm(values: np.ndarray) -> float:
    """L2 norm by a BLAS dot product (the same code as the summaries' means, so already in
    the CPU's caches when it runs)."""
    return math.sqrt(float(np.dot(values, values)))


def host_summary(pre: Tensor) -> list[float] | None:
    """numpy_summary of a pre-activation on the CPU (a view of its memory, no copy)."""
    return numpy_summary(pre.numpy())


def batch_norm_figures(parts: list[list[float]], count: int, eps: float) -> dict[str, float]:
    """Gamma and beta means and the gaps between the probe's batch statistics and the
    running ones, from (batch mean, invstd, running mean, running var[, gamma, beta]).
    The unbiased batch variance comes back from BatchNorm's 1 / sqrt(var + eps). Plain
    Python on a few dozen floats: cheaper than the first call of each numpy function after
    a training step has pushed numpy's code out of the CPU caches."""
    mean, invstd, running_mean, running_var = parts[:4]
    correction = count / max(count - 1, 1)
    channels = len(mean)
    variances = [(1.0 / (i * i) - eps) * correction if i else math.inf for i in invstd]
    found = {
        "running_mean_gap": sum(map(abs, map(operator.sub, mean, running_mean))) / channels,
        "running_var_gap": sum(map(abs, map(operator.sub, variances, running_var))) / channels,
    }
    if len(parts) == 6:
        found["gamma_mean"] = math.fsum(parts[4]) / channels
        found["beta_mean"] = math.fsum(parts[5]) / channels
    return found


def probe_path(model: Classifier) -> list[tuple[Callable | None, str, int | None]]:
    """(what to run, role, hidden layer index) for each step of the probe forward, in
    order, up to the last one a hidden layer needs (the output layer is not needed).
    Dropout is left out (it is off while probing, as in models.batch_statistics_mode)."""
    roles: dict[int, tuple[str, int]] = {}
    for index, layer in enumerate(model.hidden_layers):
        roles[id(layer.activation)] = (PREACTIVATION, index)
        if layer.norm is not None:
            roles[id(layer.norm)] = (NORMALIZE, index)
    path: list[tuple[Callable | None, str, int | None]] = []
    needed = 0
    for module in model.layers:
        if isinstance(module, nn.Dropout):
            continue
        role, index = roles.get(id(module), (RUN, None))
        if isinstance(module, BATCH_NORM_TYPES):
            role = NORMALIZE
        path.append((fast_equivalent(module), role, index))
        if index is not None:
            needed = len(path)
    path = path[:needed]
    if path and path[-1][1] == PREACTIVATION:  # its output feeds nothing that is measured
        path[-1] = (None, PREACTIVATION, path[-1][2])
    for at in range(len(path) - 1):
        (run, role, index), (after, _, _) = path[at], path[at + 1]
        if type(run) is nn.ReLU and role == PREACTIVATION and after is max_pool_2x2:
            # max then ReLU equals ReLU then max, on a quarter of the values
            path[at], path[at + 1] = (None, role, index), (relu_max_pool_2x2, RUN, None)
    return path


def fast_equivalent(module: nn.Module) -> Callable:
    """The module, or a faster function giving the same values without autograd."""
    if (
        type(module) is nn.MaxPool2d
        and _pair(module.kernel_size) == (2, 2)
        and _pair(module.stride) == (2, 2)
        and _pair(module.padding) == (0, 0)
        and _pair(module.dilation) == (1, 1)
        and not module.ceil_mode
        and not module.return_indices
    ):
        return max_pool_2x2
    return module


def max_pool_2x2(x: Tensor) -> Tensor:
    """max_pool2d(x, 2) as two elementwise maxima of strided views: the same values (NaN
    propagates in both) about ten times faster on the CPU for the probe's shapes. Only for
    the probe: its backward would split ties' gradients, unlike max_pool2d's."""
    height, width = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    rows = torch.maximum(x[..., 0:height:2, :width], x[..., 1:height:2, :width])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


def relu_max_pool_2x2(x: Tensor) -> Tensor:
    """relu(x) then max_pool2d(..., 2), as the pool then relu in place."""
    return max_pool_2x2(x).relu_()


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def to_host(tensors: list[Tensor], one_copy: bool | None = None) -> list[list[float]]:
    """The values of 1-D tensors as lists of floats. Off the CPU (or with `one_copy`) in one
    concatenation and one device-to-host copy; on the CPU each through numpy, which is
    cheaper there than concatenating first (and numpy's tolist beats torch's)."""
    if not tensors:
        return []
    if one_copy is None:
        one_copy = any(t.device.type != "cpu" for t in tensors)
    if not one_copy:
        return [t.detach().numpy().tolist() for t in tensors]
    with torch.inference_mode():
        values = torch.cat(tensors).float().cpu().numpy().tolist()
    ends = list(itertools.accumulate(len(t) for t in tensors))
    return [values[end - len(t) : end] for t, end in zip(tensors, ends)]


def numpy_summary(values: np.ndarray) -> list[float] | None:
    """[mean, std (population), percentiles over all values, percentiles of unit
    PROBE_UNIT (for a conv layer: channel PROBE_UNIT over batch and positions)], or None
    when the values are not all finite."""
    flat = values.reshape(-1)
    count = flat.size
    # BLAS dot products: several times faster than numpy's own sum at these sizes, and
    # accurate enough (float32 accumulators spread over many lanes; two passes for the
    # variance, so a large mean does not cancel it away).
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
    parts = [mean.reshape(1), std.reshape(1), percentiles_torch(flat), percentiles_torch(unit)]
    return torch.cat(parts)


def _summary_numbers(numbers: list[float]) -> list[float] | None:
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


@functools.lru_cache(maxsize=64)
def _interpolation(count: int) -> tuple[np.ndarray, list[tuple[int, int, float]]]:
    """(the ranks to select, per percentile (place of the rank below among them, place of
    the rank above, weight))."""
    below, above, weight, wanted = _ranks(count)
    place = {rank: i for i, rank in enumerate(wanted.tolist())}
    steps = [(place[b], place[a], w) for b, a, w in zip(below.tolist(), above.tolist(), weight)]
    return wanted, steps


def percentiles_numpy(values: np.ndarray) -> list[float]:
    """torch.quantile(values, PERCENTILES) for finite values (same ranks and interpolation,
    to float rounding), selecting only the order statistics needed."""
    wanted, steps = _interpolation(values.size)
    found = order_statistics(values, wanted)
    return [found[b] + w * (found[a] - found[b]) for b, a, w in steps]


PYTHON_SORT = 64  # up to this many values, Python's sort (its code is always in the cache)
DIRECT_SELECT = 8192  # up to this many values, np.partition selects directly


def order_statistics(values: np.ndarray, ranks: np.ndarray) -> list[float]:
    """The values of 0-based `ranks` in sorted order, exactly, without sorting everything.

    np.partition is a branchy scalar loop (several ns per value and rank, more with cold
    caches); a comparison and a count are vectorized passes. So for large arrays: sort an
    evenly strided sample, then for each group of adjacent ranks narrow a value interval
    known to hold them with a few comparison-and-count passes, and partition only the few
    hundred values inside it."""
    if values.size <= PYTHON_SORT:
        ordered = sorted(values.tolist())
        return [ordered[rank] for rank in ranks.tolist()]
    if values.size <= DIRECT_SELECT:
        return np.partition(values, ranks)[ranks].tolist()
    sample = np.sort(values[:: sample_stride(values.size)])
    small_enough = max(values.size // 128, 256)  # below this, a pass costs more than it saves
    found: list[float] = []
    for group in _adjacent_groups(ranks.tolist()):
        found += _select_group(values, group, sample, small_enough)
    return found


def sample_stride(count: int) -> int:
    """Every how many values the sample takes one: about count / 32 values (256 to 4,096).
    Odd, so that in a layer whose width is a power of two it walks through all units
    instead of coming back to the same few."""
    size = min(max(count // 32, 256), 4096)
    return (count // size) | 1


def _select_group(values: np.ndarray, group: list[int], sample: np.ndarray, small_enough: int):
    """The order statistics of the adjacent ranks `group` (first to last).

    Keeps a half-open interval [low, high) of values that holds them, low and high being
    sample points (or -inf, +inf), with under = #(values < low) <= first and
    upto = #(values < high) > last. It starts two standard deviations of a sample rank
    around where the sample puts the ranks (dropping a side the sample got wrong) and is
    halved at the middle sample point while it holds more than `small_enough` values."""
    count, size = values.size, sample.size
    first, last = group[0], group[-1]
    share = first / (count - 1)
    margin = 2.0 * math.sqrt(size * max(share * (1 - share), 0.01)) + 2
    low_at = int(share * (size - 1) - margin)
    high_at = int(math.ceil(last / (count - 1) * (size - 1) + margin)) + 1
    below_low = below_high = None  # values < low, values < high; None for -inf, +inf
    under, upto = 0, count
    if low_at >= 0:
        below_low = values < sample[low_at]
        under = int(np.count_nonzero(below_low))
    if below_low is None or under > first:
        low_at, below_low, under = -1, None, 0
    if high_at < size:
        below_high = values < sample[high_at]
        upto = int(np.count_nonzero(below_high))
    if below_high is None or upto <= last:
        high_at, below_high, upto = size, None, count
    while upto - under > small_enough and high_at - low_at > 1:
        middle_at = (low_at + high_at) // 2
        below_middle = values < sample[middle_at]
        middle = int(np.count_nonzero(below_middle))
        if middle <= first:  # fewer than first + 1 values lie below: the group is above
            low_at, below_low, under = middle_at, below_middle, middle
        elif middle > last:
            high_at, below_high, upto = middle_at, below_middle, middle
        else:  # the middle splits the group
            break
    if below_low is None:
        inside = values if below_high is None else np.compress(below_high, values)
    elif below_high is None:
        inside = np.compress(~below_low, values)
    else:
        inside = np.compress(below_high ^ below_low, values)  # below_low implies below_high
    ordered = np.partition(inside, [rank - under for rank in group])
    return [float(ordered[rank - under]) for rank in group]


def _adjacent_groups(ranks: list[int]) -> list[list[int]]:
    """[3, 4, 9, 10] -> [[3, 4], [9, 10]]: neighbouring ranks share one interval."""
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
