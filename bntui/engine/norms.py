"""The normalization layers the lab compares, and the two that torch does not have.

- batch: torch's BatchNorm1d/2d.
- group: torch's GroupNorm(G, C) (Wu & He 2018), on linear (N, C) and conv (N, C, H, W) inputs.
- layer: torch's LayerNorm(C) after a linear layer; after a conv layer GroupNorm(1, C), which is
  LayerNorm over (C, H, W) with one scale and shift per channel, as Wu & He compare it
  (nn.LayerNorm would learn one per pixel and fix the image size).
- ghost: Ghost Batch Normalization (Hoffer et al. 2017): in training each ghost batch of N
  images is normalized by its own statistics.
- renorm: Batch Renormalization (Ioffe 2017).

Ghost BN and Batch Renorm subclass BatchNorm1d/2d: the same parameters, running statistics and
evaluation (running statistics), so every reader of BatchNorm (diagnostics, batch-statistics
validation, saved weights) takes them as they are. With track_running_stats off (how
models.batch_statistics_mode evaluates with batch statistics) they normalize by the batch's own
statistics and leave the running ones alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def ghost_sizes(batch: int, ghost: int) -> list[int]:
    """Sizes of the ghost batches a batch splits into: `ghost` each, a remainder of one
    image joining the last full one (one image has no variance to normalize by)."""
    full, rest = divmod(batch, ghost)
    sizes = [ghost] * full
    if rest == 1 and sizes:
        sizes[-1] += 1
    elif rest:
        sizes.append(rest)
    return sizes


class _GhostBatchNorm:
    """Training: each ghost batch normalized by its own (biased) statistics, the running
    statistics updated once per ghost batch, as in Hoffer et al.'s Algorithm 1. With N >= the
    batch size this is BatchNorm exactly (one ghost batch: BatchNorm's own kernel)."""

    ghost_batch_size: int
    training: bool  # nn.Module's, which the concrete classes put first in their bases

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or x.shape[0] <= self.ghost_batch_size:
            return super().forward(x)  # type: ignore[misc]
        self._check_input_dim(x)  # type: ignore[attr-defined]
        tracking = self.track_running_stats  # type: ignore[attr-defined]
        if tracking:
            self.num_batches_tracked.add_(1)  # type: ignore[attr-defined]
        parts = [
            F.batch_norm(
                part,
                self.running_mean if tracking else None,  # type: ignore[attr-defined]
                self.running_var if tracking else None,  # type: ignore[attr-defined]
                self.weight,  # type: ignore[attr-defined]
                self.bias,  # type: ignore[attr-defined]
                True,
                self.momentum,  # type: ignore[attr-defined]
                self.eps,  # type: ignore[attr-defined]
            )
            for part in x.split(ghost_sizes(x.shape[0], self.ghost_batch_size))
        ]
        return torch.cat(parts)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, ghost_batch_size={self.ghost_batch_size}"  # type: ignore[misc]


class GhostBatchNorm1d(_GhostBatchNorm, nn.BatchNorm1d):
    def __init__(self, features: int, ghost_batch_size: int, **options) -> None:
        super().__init__(features, **options)
        self.ghost_batch_size = ghost_batch_size


class GhostBatchNorm2d(_GhostBatchNorm, nn.BatchNorm2d):
    def __init__(self, features: int, ghost_batch_size: int, **options) -> None:
        super().__init__(features, **options)
        self.ghost_batch_size = ghost_batch_size


class _BatchRenorm:
    """Training (Ioffe 2017, Algorithm 1): with the batch's mean m and deviation s (biased
    variance + eps) and the running ones mu and sigma (running var + eps),

        r = clip(s / sigma, 1/rmax, rmax),  d = clip((m - mu) / sigma, -dmax, dmax)
        y = gamma * ((x - m) / s * r + d) + beta

    with r and d constants in the backward pass (no gradient flows through them). Where r and d
    are not clipped, y = gamma * (x - mu) / sigma + beta: the forward pass uses the running
    statistics while the gradient still sees the batch's. For the first `warmup_steps` training
    steps r = 1, d = 0 (plain BatchNorm), while the running statistics settle; the paper keeps
    rmax = 1, dmax = 0 for its first 5k steps and then relaxes them. Running statistics are
    updated as BatchNorm does (momentum, unbiased variance), so evaluation is BatchNorm's."""

    rmax: float
    dmax: float
    warmup_steps: int

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not self.track_running_stats:  # type: ignore[attr-defined]
            return super().forward(x)  # type: ignore[misc]
        self._check_input_dim(x)  # type: ignore[attr-defined]
        dims = [0, *range(2, x.dim())]
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        std = (var + self.eps).sqrt()  # type: ignore[attr-defined]
        running_mean, running_var = self.running_mean, self.running_var  # type: ignore[attr-defined]
        steps = self.num_batches_tracked  # type: ignore[attr-defined]
        with torch.no_grad():
            running_std = (running_var + self.eps).sqrt()  # type: ignore[attr-defined]
            r = (std / running_std).clamp(1 / self.rmax, self.rmax)
            d = ((mean - running_mean) / running_std).clamp(-self.dmax, self.dmax)
            warm = steps >= self.warmup_steps  # a tensor: no host sync per step
            r = torch.where(warm, r, torch.ones_like(r))
            d = torch.where(warm, d, torch.zeros_like(d))
            count = x.numel() // x.shape[1]
            momentum = self.momentum  # type: ignore[attr-defined]
            running_mean.lerp_(mean.detach(), momentum)
            running_var.lerp_(var.detach() * (count / max(count - 1, 1)), momentum)
            steps.add_(1)
        y = (x - mean.view(shape)) / std.view(shape) * r.view(shape) + d.view(shape)
        if self.affine:  # type: ignore[attr-defined]
            y = y * self.weight.view(shape) + self.bias.view(shape)  # type: ignore[attr-defined]
        return y

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, rmax={self.rmax}, dmax={self.dmax}, "  # type: ignore[misc]
            f"warmup_steps={self.warmup_steps}"
        )


class BatchRenorm1d(_BatchRenorm, nn.BatchNorm1d):
    def __init__(self, features: int, rmax: float, dmax: float, warmup_steps: int, **options):
        super().__init__(features, **options)
        self.rmax, self.dmax, self.warmup_steps = rmax, dmax, warmup_steps


class BatchRenorm2d(_BatchRenorm, nn.BatchNorm2d):
    def __init__(self, features: int, rmax: float, dmax: float, warmup_steps: int, **options):
        super().__init__(features, **options)
        self.rmax, self.dmax, self.warmup_steps = rmax, dmax, warmup_steps


def make_norm(config, features: int, conv: bool) -> nn.Module:
    """The normalization layer `config.norm` for `features` channels (conv) or units."""
    batch_options = {"eps": config.bn_eps, "momentum": config.bn_momentum, "affine": config.bn_affine}
    norm = config.norm
    if norm == "batch":
        return (nn.BatchNorm2d if conv else nn.BatchNorm1d)(features, **batch_options)
    if norm == "ghost":
        cls = GhostBatchNorm2d if conv else GhostBatchNorm1d
        return cls(features, config.ghost_batch_size, **batch_options)
    if norm == "renorm":
        renorm = BatchRenorm2d if conv else BatchRenorm1d
        return renorm(
            features,
            config.renorm_rmax,
            config.renorm_dmax,
            config.renorm_warmup_steps,
            **batch_options,
        )
    plain = {"eps": config.bn_eps, "affine": config.bn_affine}
    if norm == "group":
        return nn.GroupNorm(config.norm_groups, features, **plain)
    if norm == "layer":
        if conv:
            return nn.GroupNorm(1, features, **plain)
        return nn.LayerNorm(features, eps=config.bn_eps, elementwise_affine=config.bn_affine)
    raise ValueError(f"norm: must be batch, group, layer, renorm or ghost, not {norm!r}")
