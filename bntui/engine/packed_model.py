"""Several runs of one network as one packed model: the members' linear layers become batched
matrix products, their convolutions one grouped convolution, so a step of M members costs
about one launch per layer instead of M.

Each member keeps what makes it its own run: its initial weights (built by models.build_model
under its own seed, then stacked), its normalization (BatchNorm statistics, running statistics
and every norm variant are exactly the member's), its dropout masks (drawn from its own
generator in the order its separate run draws them), and its batch. Members may differ in seed
and in BN on/off: a member without a norm layer passes its slice through where the others
normalize.

A step of these small networks costs per operation launched as much as per flop (on a GPU
almost only per operation), so the pack does per layer what it can in one:
- Members that read the same images (same seed: same split, same batches; `groups`) share
  their first layer's input: one matrix product (or convolution) with their weights side by
  side, instead of a copy of the images per member.
- Plain BatchNorm is one batch_norm over every member's channels (the members' gamma, beta and
  running statistics are slices of packed ones, their modules' tensors views of them); members
  without it take their input back through one `where`. Norm variants (Ghost BN, Batch Renorm,
  GroupNorm, LayerNorm) run as each member's own module on its slice.

Layouts: dense layers work on (M, B, F) (possibly strided: the first layer writes (B, M, F));
convolutions on (B, M*C, H, W), member m's channels at m*C:(m+1)*C (what a grouped convolution
with M groups reads and writes). On a CPU, a network that starts with a conv layer runs each
member's (B, C, H, W) apart up to the flatten, which keeps those large activations in the caches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeGuard, cast

import torch
import torch.nn.functional as F
from torch import nn

from bntui.engine.models import ACTIVATIONS, Classifier, batch_statistics_mode

_ELEMENTWISE = (*ACTIVATIONS.values(), nn.MaxPool2d)
# What fusable_batch_norms admits: exactly these classes (the variants subclass them).
_PlainBatchNorm = nn.BatchNorm1d | nn.BatchNorm2d


@dataclass(frozen=True)
class _BatchNormSettings:
    affine: bool
    momentum: float
    eps: float


class PackingError(ValueError):
    """The members cannot share one packed model (their layers differ)."""


def _bias(layer: nn.Linear | nn.Conv2d) -> torch.Tensor:
    # models.build_model gives every linear and conv layer a bias (torch types a conv's as optional).
    assert layer.bias is not None
    return layer.bias


def _use_views(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """The module's weight and bias become the given tensors (views of packed ones), no longer
    parameters of its own. (As a plain Module to mypy: torch types a Linear's or BatchNorm's
    bias as the Parameter it starts as.)"""
    del module._parameters["weight"], module._parameters["bias"]
    module.weight, module.bias = weight, bias


def _member_rows(tensor: torch.Tensor | None, members: int, place: int) -> torch.Tensor | None:
    """Member `place`'s rows of a tensor that stacks `members` members' rows (None stays None)."""
    if tensor is None:
        return None
    out = tensor.shape[0] // members
    return tensor[place * out : (place + 1) * out]


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


def fusable_batch_norms(modules: list[nn.Module | None]) -> TypeGuard[list[_PlainBatchNorm | None]]:
    """Whether one batch_norm call can stand for these members' modules (None: no norm):
    plain BatchNorm (not a variant) with running statistics and a momentum, the same settings
    in all."""
    present = [module for module in modules if module is not None]
    first = present[0]
    # Exactly these classes, tested with `is not` (which mypy narrows by, unlike `not in`).
    if (type(first) is not nn.BatchNorm1d and type(first) is not nn.BatchNorm2d) or first.momentum is None:
        return False
    settings = lambda m: (type(m), m.eps, m.momentum, m.affine, m.track_running_stats)  # noqa: E731
    return first.track_running_stats and all(settings(m) == settings(first) for m in present)


class PackedNetwork(nn.Module):
    """The members' forward pass at once: one image batch per group of members (consecutive
    members that read the same images; `groups` gives the groups' sizes, by default one
    member each) -> log-probabilities (M, B, classes). `generators[m]` draws member m's
    dropout masks (CPU or device)."""

    def __init__(self, members: list[Classifier], generators: list[torch.Generator], groups: list[int] | None = None):
        super().__init__()
        self.count = len(members)
        self.generators = generators
        groups = groups or [1] * self.count
        if sum(groups) != self.count:
            raise ValueError("the groups must cover the members")
        starts = [sum(groups[:at]) for at in range(len(groups))]
        self.groups = [(start, start + size) for start, size in zip(starts, groups)]
        self.ops: list[tuple[str, str]] = []  # (kind, layer name), in order
        # The first (linear or conv) layer, per group: "weight<g>" and "bias<g>" (k*out,), the
        # group's k members' weights side by side. (Slices of one packed weight would each cost
        # a gradient the size of the whole in backward.) A conv's weight is (k*out, in, kh, kw);
        # a linear one's is stored transposed, (in, k*out): its gradient is then the product
        # images^T @ grad, written in order, which is about twice as fast on a CPU as
        # grad^T @ images into the (k*out, in) layout (a short inner dimension, the batch,
        # and a wide output).
        self.first = nn.ParameterDict()
        self.dense = nn.ParameterDict()  # "<name>_weight" (M, out, in), "<name>_bias" (M, out)
        self.conv = nn.ParameterDict()  # "<name>_weight" (M*out, in, k, k), "<name>_bias" (M*out,)
        self.norms = nn.ModuleDict()  # name -> ModuleList of the members' modules (or Identity)
        # Plain BatchNorm over all members: "<name>_weight", "<name>_bias" (M*F), and buffers
        # "<name>_mean", "<name>_var" (M*F), "<name>_batches" (M,), "<name>_mask" (M*F, True
        # where the member normalizes; absent when all do). Slots of members without BatchNorm
        # hold placeholders: their gradient is zero and their outputs are not used.
        self.batch_norm = nn.ParameterDict()
        self.fused: dict[str, _BatchNormSettings] = {}
        self.normalizes: dict[str, list[bool]] = {}  # per fused BatchNorm: which members have it
        self.batch_statistics = False  # see batch_statistics_mode
        self.shared: dict[str, nn.Module] = {}  # activations and pooling, the same for all
        self.dropout: dict[str, float] = {}
        for name in merged_layer_names(members):
            modules = [member.layers._modules.get(name) for member in members]
            present = [module for module in modules if module is not None]
            first = present[0]
            if len(present) < len(modules) or not isinstance(
                first, (nn.Flatten, nn.Linear, nn.Conv2d, nn.Dropout, *_ELEMENTWISE)
            ):
                if not self.first:
                    raise PackingError("only networks that start with a linear or conv layer can be packed")
                if fusable_batch_norms(modules):
                    self._pack_batch_norm(name, modules)
                    self.ops.append(("batch_norm", name))
                    continue
                self.norms[name] = nn.ModuleList(module or nn.Identity() for module in modules)
                self.ops.append(("norm", name))
            elif isinstance(first, (nn.Linear, nn.Conv2d)) and not self.first:
                if isinstance(first, nn.Conv2d):
                    self._check_conv(first)
                join = torch.cat if isinstance(first, nn.Conv2d) else _side_by_side_transposed
                for group, (start, stop) in enumerate(self.groups):
                    self._stack(self.first, "", present[start:stop], join, suffix=str(group))
                self.ops.append(("first_" + ("conv" if isinstance(first, nn.Conv2d) else "linear"), name))
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
        if not self.first:
            raise PackingError("only networks that start with a linear or conv layer can be packed")
        # The layers after a first conv layer, up to the flatten, that run per member on a CPU.
        self.conv_stage: list[tuple[str, str]] = []
        if any(kind == "first_conv" for kind, _name in self.ops):
            after = self.ops[[kind for kind, _name in self.ops].index("first_conv") + 1 :]
            for kind, name in after:
                if kind not in ("conv", "batch_norm", "norm", "dropout", "shared"):
                    break
                self.conv_stage.append((kind, name))

    def _pack_batch_norm(self, name: str, modules: list[_PlainBatchNorm | None]) -> None:
        """`modules`: as fusable_batch_norms admits them (running statistics, a momentum)."""
        first = next(module for module in modules if module is not None)
        features = first.num_features
        # get_buffer: a Tensor to mypy (the attributes are Tensor | None: running statistics
        # are optional in general, not here).
        device = first.get_buffer("running_mean").device

        def joined(read: Callable[[_PlainBatchNorm], torch.Tensor], fill: float) -> torch.Tensor:
            return torch.cat(
                [read(m).detach() if m is not None else torch.full((features,), fill, device=device) for m in modules]
            ).clone()

        if first.affine:
            self.batch_norm[f"{name}_weight"] = nn.Parameter(joined(lambda m: m.weight, 1.0))
            self.batch_norm[f"{name}_bias"] = nn.Parameter(joined(lambda m: m.bias, 0.0))
        self.register_buffer(f"{name}_mean", joined(lambda m: m.get_buffer("running_mean"), 0.0))
        self.register_buffer(f"{name}_var", joined(lambda m: m.get_buffer("running_var"), 1.0))
        batches = [
            m.get_buffer("num_batches_tracked")
            if m is not None
            else first.get_buffer("num_batches_tracked").new_zeros(())
            for m in modules
        ]
        self.register_buffer(f"{name}_batches", torch.stack(batches).clone())
        if len([m for m in modules if m is not None]) < len(modules):
            mask = torch.cat([torch.full((features,), m is not None) for m in modules])
            self.register_buffer(f"{name}_mask", mask.to(device))
        momentum = first.momentum
        assert momentum is not None  # fusable_batch_norms admits only BatchNorms with one
        self.fused[name] = _BatchNormSettings(first.affine, momentum, first.eps)
        self.normalizes[name] = [m is not None for m in modules]

    @staticmethod
    def _check_conv(conv: nn.Conv2d) -> None:
        if conv.groups != 1 or conv.padding_mode != "zeros":
            raise PackingError("only plain convolutions can be packed")

    @staticmethod
    def _stack(
        store: nn.ParameterDict,
        name: str,
        modules: list[nn.Module],
        join: Callable[[list[torch.Tensor]], torch.Tensor],
        suffix: str = "",
    ) -> None:
        prefix = f"{name}_" if name else ""
        # The members' layers at one name are of one kind, the first member's: linear or conv.
        layers = cast(list[nn.Linear | nn.Conv2d], modules)
        store[f"{prefix}weight{suffix}"] = nn.Parameter(join([m.weight.detach() for m in layers]).clone())
        store[f"{prefix}bias{suffix}"] = nn.Parameter(join([_bias(m).detach() for m in layers]).clone())

    def forward(self, images: list[torch.Tensor]) -> torch.Tensor:
        """`images[g]`: the batch (B, C, H, W) of member group g."""
        x: torch.Tensor | None = None  # the members' activations, from the first layer on
        # On a CPU, from a first conv layer to the flatten: each member's layers one after
        # the other on its own activations, (B, C, H, W), as its separate run has them.
        # Packed, they would outgrow the caches (LeNet-5's first conv: 5 MB for 6 members at
        # batch 64, 0.9 MB for one), which costs the elementwise layers on them more than the
        # launches that packing saves.
        skip = 0
        conv_layout = False
        for kind, name in self.ops:
            if skip:
                skip -= 1
                continue
            if x is None:  # before the first layer: a flatten of the images, or the layer
                if kind == "flatten":
                    images = [part.flatten(1) for part in images]
                elif kind == "first_conv" and images[0].device.type == "cpu":
                    conv_layout, skip = True, len(self.conv_stage)
                    x = self._conv_stage_apart(images)
                elif kind.startswith("first_"):
                    conv_layout = kind == "first_conv"
                    x = self._first_layer(images, conv_layout)
                else:
                    raise PackingError(f"{name}: only a flatten can come before the first layer")
            elif kind == "conv":
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
            elif kind == "batch_norm":
                x = self._batch_norm(name, x, conv_layout)
            elif kind == "norm":
                x = self._per_member(cast(nn.ModuleList, self.norms[name]), x, conv_layout)
            elif kind == "dropout":
                x = self._drop(x, self.dropout[name])
            else:
                x = self.shared[name](x)
        assert x is not None  # __init__ refuses networks without a first layer
        return F.log_softmax(x, dim=-1)

    def _conv_stage_apart(self, images: list[torch.Tensor]) -> torch.Tensor:
        """The first conv layer and self.conv_stage, member by member (see forward), joined
        as (B, M*C, H, W)."""
        buffers = cast("dict[str, torch.Tensor]", self._buffers)  # as in _batch_norm
        if self.training and not self.batch_statistics:
            for kind, name in self.conv_stage:
                if kind == "batch_norm":
                    buffers[f"{name}_batches"].add_(1)
        parts = []
        for group, (start, stop) in enumerate(self.groups):
            weight, bias = self.first[f"weight{group}"], self.first[f"bias{group}"]
            out = weight.shape[0] // (stop - start)
            for index in range(start, stop):
                rows = slice((index - start) * out, (index - start + 1) * out)
                x = F.conv2d(images[group], weight[rows], bias[rows])
                for kind, name in self.conv_stage:
                    x = self._member_layer(kind, name, index, x)
                parts.append(x)
        return torch.cat(parts, 1)

    def _member_layer(self, kind: str, name: str, index: int, x: torch.Tensor) -> torch.Tensor:
        """Layer `name` of member `index` on its own activations x: its slices of the packed
        weights, BatchNorm parameters and statistics (views: the running statistics are
        updated in place), its norm module, its dropout generator."""
        if kind == "conv":
            weight, bias = self.conv[f"{name}_weight"], self.conv[f"{name}_bias"]
            out = weight.shape[0] // self.count
            rows = slice(index * out, (index + 1) * out)
            return F.conv2d(x, weight[rows], bias[rows])
        if kind == "batch_norm":
            if not self.normalizes[name][index]:
                return x
            settings, buffers = self.fused[name], cast("dict[str, torch.Tensor]", self._buffers)
            tracked = not self.batch_statistics
            channels = slice(index * x.shape[1], (index + 1) * x.shape[1])
            return F.batch_norm(
                x,
                buffers[f"{name}_mean"][channels] if tracked else None,
                buffers[f"{name}_var"][channels] if tracked else None,
                self.batch_norm[f"{name}_weight"][channels] if settings.affine else None,
                self.batch_norm[f"{name}_bias"][channels] if settings.affine else None,
                self.training or self.batch_statistics,
                settings.momentum,
                settings.eps,
            )
        if kind == "norm":
            return cast(nn.ModuleList, self.norms[name])[index](x)
        if kind == "dropout":
            p = self.dropout[name]
            if not self.training or p == 0:
                return x
            if p == 1:
                return torch.zeros_like(x)
            mask = torch.empty(x.shape, dtype=x.dtype).bernoulli_(1 - p, generator=self.generators[index])
            return x * mask.div_(1 - p)  # as _drop draws it
        return self.shared[name](x)

    def _first_layer(self, images: list[torch.Tensor], conv: bool) -> torch.Tensor:
        """Each group's images times its members' weights side by side (one product per group),
        as (M, B, out) (a view of (B, M, out)) or, for a conv layer, (B, M*out, H, W)."""
        first = self.first
        if conv:
            parts = [F.conv2d(x, first[f"weight{g}"], first[f"bias{g}"]) for g, x in enumerate(images)]
        else:
            parts = [torch.addmm(first[f"bias{g}"], x, first[f"weight{g}"]) for g, x in enumerate(images)]
        joined = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        if conv:
            return joined
        return joined.view(joined.shape[0], self.count, -1).transpose(0, 1)

    def _first_slot(self, index: int) -> tuple[str, int]:
        """Member `index`'s group (as the key suffix in self.first) and place in it."""
        for group, (start, stop) in enumerate(self.groups):
            if start <= index < stop:
                return str(group), index - start
        raise IndexError(index)

    def _batch_norm(self, name: str, x: torch.Tensor, conv_layout: bool) -> torch.Tensor:
        """Every member's BatchNorm in one call over its channels (members without one get
        their input back). Eval mode uses the running statistics; batch_statistics_mode the
        batch's own, leaving the running ones alone."""
        # The pack's buffers are all tensors (torch types them as optional in general).
        settings, buffers = self.fused[name], cast("dict[str, torch.Tensor]", self._buffers)
        if conv_layout:
            flat = x
        else:  # (M, B, F) -> (B, M*F), a view when x is the first layer's output
            m, b, f = x.shape
            flat = x.transpose(0, 1).reshape(b, m * f)
        training = self.training and not self.batch_statistics
        if training:
            buffers[f"{name}_batches"].add_(1)
        use_batch = training or self.batch_statistics
        tracked = not self.batch_statistics
        normalized = F.batch_norm(
            flat,
            buffers[f"{name}_mean"] if tracked else None,
            buffers[f"{name}_var"] if tracked else None,
            self.batch_norm[f"{name}_weight"] if settings.affine else None,
            self.batch_norm[f"{name}_bias"] if settings.affine else None,
            use_batch,
            settings.momentum,
            settings.eps,
        )
        mask = buffers.get(f"{name}_mask")
        if mask is not None:
            normalized = torch.where(mask.view(-1, 1, 1) if conv_layout else mask, normalized, flat)
        if conv_layout:
            return normalized
        return normalized.view(b, m, f).transpose(0, 1)

    @contextlib.contextmanager
    def batch_statistics_mode(self) -> Iterator[None]:
        """models.batch_statistics_mode for the pack (use in eval mode): BatchNorm normalizes
        by the batch's own statistics, running statistics untouched, no dropout."""
        with contextlib.ExitStack() as stack:
            for modules in self.norms.values():
                stack.enter_context(batch_statistics_mode(modules))
            self.batch_statistics = True
            try:
                yield
            finally:
                self.batch_statistics = False

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
        weights and no copy. The members' own parameters are dropped: train the packed model.
        The same for plain BatchNorm's gamma, beta and running statistics."""
        for kind, name in self.ops:
            if kind == "batch_norm":
                self._share_batch_norm(name, members)
            if kind.startswith("first_"):
                for index, member in enumerate(members):
                    layer = _layer(member, name)
                    group, place = self._first_slot(index)
                    out = layer.weight.shape[0]
                    part = slice(place * out, (place + 1) * out)
                    weight = self.first[f"weight{group}"].detach()
                    weight = weight[part] if kind == "first_conv" else weight[:, part].t()
                    _use_views(layer, weight, self.first[f"bias{group}"].detach()[part])
            if kind not in ("linear", "conv"):
                continue
            store = self.dense if kind == "linear" else self.conv
            weight, bias = store[f"{name}_weight"].detach(), store[f"{name}_bias"].detach()
            for index, member in enumerate(members):
                layer = _layer(member, name)
                if kind == "linear":
                    views = weight[index], bias[index]
                else:
                    out = cast(nn.Conv2d, layer).out_channels
                    views = weight[index * out : (index + 1) * out], bias[index * out : (index + 1) * out]
                _use_views(layer, *views)

    def _share_batch_norm(self, name: str, members: list[Classifier]) -> None:
        packed, buffers = self.batch_norm, cast("dict[str, torch.Tensor]", self._buffers)  # as in _batch_norm
        for index, member in enumerate(members):
            # Plain BatchNorm or none: fusable_batch_norms admitted this layer.
            module = cast("_PlainBatchNorm | None", member.layers._modules.get(name))
            if module is None:
                continue
            part = slice(index * module.num_features, (index + 1) * module.num_features)
            if module.affine:
                _use_views(module, packed[f"{name}_weight"].detach()[part], packed[f"{name}_bias"].detach()[part])
            module._buffers["running_mean"] = buffers[f"{name}_mean"][part]
            module._buffers["running_var"] = buffers[f"{name}_var"][part]
            module._buffers["num_batches_tracked"] = buffers[f"{name}_batches"][index]

    def weight_gradients(self, index: int, names: list[str]) -> list[torch.Tensor | None]:
        """Member `index`'s gradient of each named linear or conv layer's weight: its slice
        of the packed weight's gradient (None before the first backward)."""
        found: list[torch.Tensor | None] = []
        first_name = next(name for kind, name in self.ops if kind.startswith("first_"))
        for name in names:
            if name == first_name:
                group, place = self._first_slot(index)
                start, stop = self.groups[int(group)]
                grad = self.first[f"weight{group}"].grad
                if grad is not None and grad.dim() == 2:  # a linear layer's, stored transposed
                    grad = grad.t()
                found.append(_member_rows(grad, stop - start, place))
            elif f"{name}_weight" in self.dense:
                grad = self.dense[f"{name}_weight"].grad
                found.append(None if grad is None else grad[index])
            else:
                found.append(_member_rows(self.conv[f"{name}_weight"].grad, self.count, index))
        return found


def _side_by_side_transposed(weights: list[torch.Tensor]) -> torch.Tensor:
    """Linear weights (out, in) -> (in, k*out): each one's transpose, side by side (biases
    (out,) -> (k*out,))."""
    return torch.cat([weight.t() for weight in weights], -1)


def _layer(member: Classifier, name: str) -> nn.Linear | nn.Conv2d:
    """The member's linear or conv layer `name` (one the pack stacked)."""
    return cast(nn.Linear | nn.Conv2d, member.layers._modules[name])
