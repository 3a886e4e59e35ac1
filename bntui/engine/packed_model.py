"""Several runs of one network as one packed model: the members' linear layers become batched
matrix products, their convolutions one grouped convolution, so a step of M members costs
about one launch per layer instead of M.

Each member keeps what makes it its own run: its initial weights (built by models.build_model
under its own seed, then stacked), its normalization modules (applied to its slice alone, so
BatchNorm statistics, running statistics and every norm variant are exactly the member's), its
dropout masks (drawn from its own generator in the order its separate run draws them), and its
batch. Members may differ in seed and in BN on/off: a member without a norm layer passes its
slice through where the others normalize.

Layouts: dense layers work on (M, B, F); convolutions on (B, M*C, H, W), member m's channels
at m*C:(m+1)*C (what a grouped convolution with M groups reads and writes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bntui.engine.models import ACTIVATIONS, Classifier

_ELEMENTWISE = (*ACTIVATIONS.values(), nn.MaxPool2d)


class PackingError(ValueError):
    """The members cannot share one packed model (their layers differ)."""


def merged_layer_names(members: list[Classifier]) -> list[str]:
    """Every member's layer names in order. Members differ only in norm layers (BN on/off),
    which sit at the same places, so the longest list holds every other one in order."""
    lists = [list(member.layers._modules) for member in members]
    longest = max(lists, key=len)
    for names in lists:
        remaining = iter(longest)
        if not all(name in remaining for name in names):
            raise PackingError("the runs' networks have different layers")
    return longest


class PackedNetwork(nn.Module):
    """The members' forward pass at once: images (M, B, C, H, W) -> log-probabilities
    (M, B, classes). `generators[m]` draws member m's dropout masks (CPU or device)."""

    def __init__(self, members: list[Classifier], generators: list[torch.Generator]):
        super().__init__()
        self.count = len(members)
        self.generators = generators
        self.ops: list[tuple[str, str]] = []  # (kind, layer name), in order
        self.dense = nn.ParameterDict()  # "<name>_weight" (M, out, in), "<name>_bias" (M, out)
        self.conv = nn.ParameterDict()  # "<name>_weight" (M*out, in, k, k), "<name>_bias" (M*out,)
        self.norms = nn.ModuleDict()  # name -> ModuleList of the members' modules (or Identity)
        self.shared: dict[str, nn.Module] = {}  # activations and pooling, the same for all
        self.dropout: dict[str, float] = {}
        for name in merged_layer_names(members):
            modules = [member.layers._modules.get(name) for member in members]
            present = [module for module in modules if module is not None]
            first = present[0]
            if len(present) < len(modules) or not isinstance(
                first, (nn.Flatten, nn.Linear, nn.Conv2d, nn.Dropout, *_ELEMENTWISE)
            ):
                self.norms[name] = nn.ModuleList(module or nn.Identity() for module in modules)
                self.ops.append(("norm", name))
            elif isinstance(first, nn.Linear):
                self._stack(self.dense, name, present, lambda w: torch.stack(w))
                self.ops.append(("linear", name))
            elif isinstance(first, nn.Conv2d):
                self._check_conv(first)
                self._stack(self.conv, name, present, lambda w: torch.cat(w))
                self.ops.append(("conv", name))
            elif isinstance(first, nn.Flatten):
                self.ops.append(("flatten", name))
            elif isinstance(first, nn.Dropout):
                self.dropout[name] = first.p
                self.ops.append(("dropout", name))
            else:
                self.shared[name] = first
                self.ops.append(("shared", name))

    @staticmethod
    def _check_conv(conv: nn.Conv2d) -> None:
        if conv.groups != 1 or conv.padding_mode != "zeros":
            raise PackingError("only plain convolutions can be packed")

    @staticmethod
    def _stack(store: nn.ParameterDict, name: str, modules: list[nn.Module], join) -> None:
        store[f"{name}_weight"] = nn.Parameter(join([m.weight.detach() for m in modules]).clone())
        store[f"{name}_bias"] = nn.Parameter(join([m.bias.detach() for m in modules]).clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x, conv_layout = images, False
        for kind, name in self.ops:
            if kind == "conv":
                if not conv_layout:  # (M, B, C, H, W) -> (B, M*C, H, W)
                    m, b, c, h, w = x.shape
                    x = x.transpose(0, 1).reshape(b, m * c, h, w)
                    conv_layout = True
                conv = self.conv
                x = F.conv2d(x, conv[f"{name}_weight"], conv[f"{name}_bias"], groups=self.count)
            elif kind == "linear":
                weight, bias = self.dense[f"{name}_weight"], self.dense[f"{name}_bias"]
                x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
            elif kind == "flatten":
                if conv_layout:  # (B, M*C, H, W) -> (M, B, C*H*W): each member's own C, H, W
                    x = x.reshape(x.shape[0], self.count, -1).transpose(0, 1)
                    conv_layout = False
                else:
                    x = x.flatten(2)
            elif kind == "norm":
                x = self._per_member(self.norms[name], x, conv_layout)
            elif kind == "dropout":
                x = self._drop(x, self.dropout[name])
            else:
                x = self.shared[name](x)
        return F.log_softmax(x, dim=-1)

    def _per_member(self, modules: nn.ModuleList, x: torch.Tensor, conv_layout: bool) -> torch.Tensor:
        if conv_layout:
            b, mc, h, w = x.shape
            parts = x.view(b, self.count, mc // self.count, h, w).unbind(1)
            return torch.stack([module(part) for module, part in zip(modules, parts)], 1).view(b, mc, h, w)
        return torch.stack([module(part) for module, part in zip(modules, x.unbind(0))])

    def _drop(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """Dropout as torch draws it on a CPU (aten's _dropout_impl: a Bernoulli(1 - p) mask
        the shape of the input, divided by 1 - p, times the input), per member from its own
        generator, so a member's masks are its separate run's."""
        if not self.training or p == 0:
            return x
        if p == 1:
            return torch.zeros_like(x)
        masks = [
            torch.empty(part.shape, dtype=x.dtype, device=x.device).bernoulli_(1 - p, generator=gen).div_(1 - p)
            for part, gen in zip(x.unbind(0), self.generators)
        ]
        return x * torch.stack(masks)

    def share_weights_with(self, members: list[Classifier]) -> None:
        """Make each member's linear and conv weights views of its slice of the packed ones,
        so the member evaluates (eval mode, no gradient) with the packed model's current
        weights and no copy. The members' own parameters are dropped: train the packed model."""
        for kind, name in self.ops:
            if kind not in ("linear", "conv"):
                continue
            store = self.dense if kind == "linear" else self.conv
            weight, bias = store[f"{name}_weight"].detach(), store[f"{name}_bias"].detach()
            for index, member in enumerate(members):
                module = member.layers._modules[name]
                if kind == "linear":
                    views = weight[index], bias[index]
                else:
                    out = module.out_channels
                    views = weight[index * out : (index + 1) * out], bias[index * out : (index + 1) * out]
                del module._parameters["weight"], module._parameters["bias"]
                module.weight, module.bias = views

    def weight_gradients(self, index: int, names: list[str]) -> list[torch.Tensor | None]:
        """Member `index`'s gradient of each named linear or conv layer's weight: its slice
        of the packed weight's gradient (None before the first backward)."""
        found = []
        for name in names:
            if f"{name}_weight" in self.dense:
                grad = self.dense[f"{name}_weight"].grad
                found.append(None if grad is None else grad[index])
            else:
                grad = self.conv[f"{name}_weight"].grad
                out = None if grad is None else grad.shape[0] // self.count
                found.append(None if grad is None else grad[index * out : (index + 1) * out])
        return found
