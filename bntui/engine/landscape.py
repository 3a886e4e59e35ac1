"""Loss-landscape measurements of Santurkar et al. 2018 ("How Does Batch Normalization Help
Optimization?", section 3.1, Fig. 4), taken every `landscape_every` training steps.

At the current weights w, on the current mini-batch, with g = grad L(w), for each step size
eta in ETAS:

    loss_min, loss_max             min / max over eta of L(w - eta g)          (loss landscape)
    grad_change_min, _max          min / max over eta of ||grad L(w) - grad L(w - eta g)||
                                                                      (gradient predictiveness)
    beta_smoothness                max over eta of ||grad L(w) - grad L(w - eta g)|| / ||eta g||
                                                                  (effective beta-smoothness)

Norms are over all the model's parameters together (weights, biases, the norms' scale and
shift).

Step sizes. ETAS are absolute: the point w - eta g, for eta from 0.05 to 0.4 (the paper's
range, up to 0.4 x the gradient). With plain SGD at learning rate lr one training step moves
w to w - lr g, so eta = lr is one step along the measured gradient and eta = 0.4 is 0.4 / lr
steps (4 at the santurkar-landscape preset's lr = 0.1); with momentum or Adam the step taken
is not along g, and eta is a distance along the gradient only.

The loss is the training loss (mean NLL) of the batch, computed as training computes it but
deterministically: normalization layers use the batch's statistics (BatchNorm's training
behaviour; Batch Renorm measured as BatchNorm, with r = 1, d = 0, since its r and d depend on
running statistics that a probe must not update) and dropout is off.

Measuring never changes training, by construction rather than by restoring: the moved weights
are passed to torch.func.functional_call, so the model's parameters are never written; the
gradients come from torch.autograd.grad, so no .grad is touched (nor the optimizer, which only
reads them); running statistics stay as they are (models.batch_statistics_mode); and no random
numbers are drawn (dropout off). The test suite checks that a run's losses are bit-identical
with and without measuring.

Cost: one forward and backward pass of the batch at w and one at each eta, so len(ETAS) + 1 =
9 passes every K steps; bench/diagnostics_overhead.py reports it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from bntui.engine.events import Landscape
from bntui.engine.models import batch_statistics_mode

ETAS: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
KEYS = ("loss_min", "loss_max", "grad_change_min", "grad_change_max", "beta_smoothness")


def loss_and_gradient(
    model: nn.Module, parameters: Mapping[str, Tensor], images: Tensor, targets: Tensor
) -> tuple[Tensor, list[Tensor]]:
    """The batch loss with the model's parameters replaced by `parameters`, and its gradient
    with respect to them (zeros for a parameter the loss does not use)."""
    leaves = {name: value.detach().requires_grad_(True) for name, value in parameters.items()}
    with torch.enable_grad():
        loss = F.nll_loss(functional_call(model, leaves, (images,)), targets)
        raw = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    grads = [torch.zeros_like(v) if g is None else g for v, g in zip(leaves.values(), raw)]
    return loss.detach(), grads


def _norm(tensors: Sequence[Tensor]) -> Tensor:
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(tensors))))


def measure(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    etas: Sequence[float] = ETAS,
    parameters: dict[str, Tensor] | None = None,
) -> dict[str, float | None]:
    """KEYS to numbers at the model's current weights on this batch (None where not finite:
    a large step can overflow the loss). `parameters`: the model's weights by name, where
    they are not its own parameters (a packed member's are views of the pack's)."""
    parameters = dict(model.named_parameters()) if parameters is None else parameters
    with batch_statistics_mode(model):
        _, gradient = loss_and_gradient(model, parameters, images, targets)
        losses, changes = [], []
        for eta in etas:
            moved = {name: value.detach() - eta * grad for (name, value), grad in zip(parameters.items(), gradient)}
            loss, moved_gradient = loss_and_gradient(model, moved, images, targets)
            losses.append(loss)
            changes.append(_norm(torch._foreach_sub(gradient, moved_gradient)))
    # One copy to the host for everything: a single device sync per measurement.
    numbers = torch.stack([*losses, *changes, _norm(gradient)]).double().tolist()
    count = len(etas)
    losses_, changes_, gradient_norm = numbers[:count], numbers[count : 2 * count], numbers[-1]
    smoothness = [
        change / (eta * gradient_norm) if gradient_norm > 0 else math.nan for change, eta in zip(changes_, etas)
    ]
    found = {
        "loss_min": _extreme(min, losses_),
        "loss_max": _extreme(max, losses_),
        "grad_change_min": _extreme(min, changes_),
        "grad_change_max": _extreme(max, changes_),
        "beta_smoothness": _extreme(max, smoothness),
    }
    return {key: value if math.isfinite(value) else None for key, value in found.items()}


def _extreme(pick, values: list[float]) -> float:
    """min or max, NaN if any value is NaN (Python's min and max would depend on the order)."""
    return math.nan if any(map(math.isnan, values)) else pick(values)


class LandscapeRecorder:
    """Measures every `every` steps; the training loop calls `due(step)` and `measure`."""

    def __init__(
        self,
        model: nn.Module,
        every: int,
        etas: Sequence[float] = ETAS,
        parameters: dict[str, Tensor] | None = None,
    ):
        self.model, self.every, self.etas = model, every, tuple(etas)
        self.parameters = parameters

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def measure(self, images: Tensor, targets: Tensor, step: int, epoch: int) -> Landscape:
        found = measure(self.model, images, targets, self.etas, self.parameters)
        return Landscape(step=step, epoch=epoch, **found)
