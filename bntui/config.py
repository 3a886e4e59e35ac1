"""Run settings: the single source of truth for what one training run does.

`RunConfig` is validated by the CLI, the TUI form and JSON import alike. It must stay cheap
to import (no torch): `bntui --help` and the TUI's first paint depend on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Dataset = Literal["mnist-mini", "mnist", "fashion-mnist", "cifar10"]
Architecture = Literal["mlp", "lenet5"]
Activation = Literal["relu", "sigmoid", "tanh"]
Placement = Literal["before", "after"]
Optimizer = Literal["adam", "sgd"]
BnChoice = Literal["on", "off", "both"]
CudaGraphs = Literal["auto", "off"]
Norm = Literal["batch", "group", "layer", "renorm", "ghost"]

DATASETS: tuple[str, ...] = ("mnist-mini", "mnist", "fashion-mnist", "cifar10")
ARCHITECTURES: tuple[str, ...] = ("mlp", "lenet5")

# The lab trains the MLP for 10 epochs and LeNet-5 for 20, LeNet-5 with dropout 0.3.
DEFAULT_EPOCHS = {"mlp": 10, "lenet5": 20}
DEFAULT_DROPOUT = {"mlp": 0.0, "lenet5": 0.3}

# Short names for run ids, labels and tables; the "off" arm of every norm is "nobn".
NORM_TAGS = {"batch": "bn", "group": "gn", "layer": "ln", "renorm": "brn", "ghost": "gbn"}
NORM_NAMES = {
    "batch": "BatchNorm", "group": "GroupNorm", "layer": "LayerNorm",
    "renorm": "Batch Renorm", "ghost": "Ghost BN",
}  # fmt: skip
BATCH_STATISTICS_NORMS = ("batch", "renorm", "ghost")
# The settings that only one norm reads (the form shows them only for it).
NORM_PARAMETERS = {
    "group": ("norm_groups",),
    "ghost": ("ghost_batch_size",),
    "renorm": ("renorm_rmax", "renorm_dmax", "renorm_warmup_steps"),
}
# Widths of LeNet-5's hidden layers (conv1, conv2, fc3, fc4), fixed by the architecture.
LENET5_WIDTHS = (("conv1", 6), ("conv2", 16), ("fc3", 120), ("fc4", 84))

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

MAX_SEED = 2**31 - 1  # torch.manual_seed takes more, but numpy and CUDA generators do not
# How many seeds one launch takes (the form, `bntui run --seeds`, a sweep file): each is a run,
# or a BN / no-BN pair.
MAX_SEEDS = 1000
# Seeds when none are given: a paired comparison from fewer than 3 seed pairs is fragile (the
# result card says so), one run of a single arm is a quick look.
PAIRED_DEFAULT_SEEDS = 3
SEEDS_DESCRIPTION = "number of seeds: seed .. seed+K-1 (default: 3 with --bn both, else 1)"


def default_seeds(bn: str) -> int:
    """The number of seeds a launch takes when none is given, for normalize = `bn`."""
    return PAIRED_DEFAULT_SEEDS if bn == "both" else 1


class TrainingFields(BaseModel):
    """Fields shared by one run's config and the `bntui run` command that launches runs."""

    # No inf or nan: a run is stored as JSON, where they cannot round-trip in a config.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    dataset: Dataset = Field("mnist-mini", description="dataset to train on")
    arch: Architecture = Field("mlp", description="network architecture")
    activation: Activation = Field("relu", description="hidden-layer non-linearity")
    norm: Norm = Field("batch", description="normalization where --bn is on: batch, group, layer, renorm or ghost")
    # 2, not Wu & He's 32: LeNet-5's first layer has 6 channels, and groups must divide it.
    norm_groups: int = Field(2, ge=1, description="GroupNorm: groups per layer (must divide each width)")
    ghost_batch_size: int = Field(
        16, ge=2, description="Ghost BN: images per ghost batch whose statistics normalize it"
    )
    renorm_rmax: float = Field(3.0, ge=1, description="Batch Renorm: r is clipped to [1/rmax, rmax]")
    renorm_dmax: float = Field(5.0, ge=0, description="Batch Renorm: d is clipped to [-dmax, dmax]")
    renorm_warmup_steps: int = Field(
        100, ge=0, description="Batch Renorm: steps of plain BatchNorm (r=1, d=0) before r, d apply"
    )
    bn_momentum: float = Field(0.1, gt=0, le=1, description="BatchNorm running-stats momentum")
    bn_eps: float = Field(1e-5, gt=0, description="BatchNorm epsilon")
    bn_affine: bool = Field(True, description="BatchNorm learns a scale and shift")
    bn_placement: Placement = Field("before", description="BatchNorm before or after the activation")
    hidden_sizes: list[int] = Field([128, 64], description="MLP hidden layer widths, e.g. 128,64")
    dropout: float | None = Field(None, ge=0, lt=1, description="dropout probability; unset: 0.3 for lenet5, 0 for mlp")
    optimizer: Optimizer = Field("adam", description="optimizer")
    sgd_momentum: float = Field(0.9, ge=0, lt=1, description="momentum for the sgd optimizer")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    batch_size: int = Field(64, ge=1, le=65536, description="mini-batch size")
    epochs: int | None = Field(None, ge=1, le=10000, description="epochs; unset: 10 for mlp, 20 for lenet5")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="share of the training set held out")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="random seed")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    # "off" until bench/gpu_check.py has run on a GPU: the graphed step has never met CUDA.
    cuda_graphs: CudaGraphs = Field(
        "off", description="replay the training step as a CUDA graph: auto (on CUDA only) or off"
    )
    progress_every: int = Field(50, ge=1, description="steps between progress events")
    # 25, not 10 (the paper-fig1 preset's interval): on a CPU one measurement of the small MLP
    # costs most of a training step, and every 10 steps that is over 5% of training
    # (bench/diagnostics_overhead.py).
    diagnostics_every: int = Field(25, ge=0, description="steps between BatchNorm diagnostics (0 turns them off)")
    landscape_every: int = Field(0, ge=0, description="steps between loss-landscape measurements (0 turns them off)")

    @field_validator("hidden_sizes", mode="before")
    @classmethod
    def _parse_hidden_sizes(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(" ", ",").split(",") if p.strip()]
            try:
                return [int(p) for p in parts]
            except ValueError:
                raise ValueError("must be comma-separated positive integers, e.g. 128,64") from None
        return value

    @field_validator("hidden_sizes")
    @classmethod
    def _check_hidden_sizes(cls, value: list[int]) -> list[int]:
        if not value or len(value) > 16 or any(size < 1 or size > 65536 for size in value):
            raise ValueError("must be 1 to 16 positive integers (each at most 65536), e.g. 128,64")
        return value

    @field_validator("device")
    @classmethod
    def _check_device_name(cls, value: str | None) -> str | None:
        if value is None:  # only the `run` command allows "unset": it falls back to settings
            return value
        return check_device_name(value)


class RunConfig(TrainingFields):
    """Everything one training run needs. Defaults that depend on the architecture are filled
    in at validation, so a stored config is explicit and round-trips exactly through JSON."""

    bn: bool = Field(True, description="use the normalization `norm` (False: none)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout probability")
    epochs: int = Field(10, ge=1, le=10000, description="epochs")

    @model_validator(mode="before")
    @classmethod
    def _fill_arch_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            arch = data.get("arch", "mlp")
            if data.get("epochs") is None and arch in DEFAULT_EPOCHS:
                data["epochs"] = DEFAULT_EPOCHS[arch]
            if data.get("dropout") is None and arch in DEFAULT_DROPOUT:
                data["dropout"] = DEFAULT_DROPOUT[arch]
            if isinstance(data.get("bn"), str):
                data["bn"] = _parse_on_off(data["bn"])
        return data

    @model_validator(mode="after")
    def _check_combination(self) -> RunConfig:
        # GroupNorm and LayerNorm normalize each image alone: they train on batches of one.
        if self.bn and self.norm in BATCH_STATISTICS_NORMS and self.batch_size < 2:
            raise ValueError("batch_size: must be at least 2 with BatchNorm on (it cannot train on one sample)")
        if self.bn and self.norm == "group" and (problem := self.groups_problem()):
            raise ValueError(f"norm_groups: {problem}")
        return self

    def hidden_widths(self) -> list[tuple[str, int]]:
        """(layer name, width) of each hidden layer, as models.build_model names them."""
        if self.arch == "lenet5":
            return list(LENET5_WIDTHS)
        return [(f"fc{index}", size) for index, size in enumerate(self.hidden_sizes, start=1)]

    def groups_problem(self) -> str | None:
        """Why norm_groups cannot split every hidden layer into equal groups, or None."""
        widths = self.hidden_widths()
        for name, width in widths:
            if width % self.norm_groups:
                common = [g for g in range(1, width + 1) if all(w % g == 0 for _, w in widths)]
                allowed = ", ".join(map(str, common))
                return (
                    f"{self.norm_groups} does not divide layer {name}'s width {width}; "
                    f"must divide every hidden layer's width ({allowed})"
                )
        return None

    @property
    def norm_tag(self) -> str:
        """ "bn", "gn", "ln", "brn", "gbn", or "nobn" without normalization."""
        return NORM_TAGS[self.norm] if self.bn else "nobn"

    @property
    def label(self) -> str:
        """Short human label: dataset/arch/norm/seed (bn, gn, ln, brn, gbn or no-bn)."""
        arm = "no-bn" if not self.bn else NORM_TAGS[self.norm]
        return f"{self.dataset}/{self.arch}/{arm}/s{self.seed}"


# Settings that may differ between a BN run and its no-BN twin without changing what is
# compared: the arm itself, and what only sets where or how often things are measured.
PAIRING_IGNORED = frozenset({"bn", "seed", "device", "progress_every", "diagnostics_every", "landscape_every"})


def pairing_key(config: RunConfig, settings: Iterable[str] | None = None) -> str:
    """What a BN / no-BN pair must share besides its seed: `settings` (None: every setting
    but PAIRING_IGNORED). In a sweep the runs of one seed differ in the swept settings, and
    only equal values pair up."""
    if settings is None:
        return config.model_dump_json(exclude=set(PAIRING_IGNORED))
    return config.model_dump_json(include=set(settings))


def swept_settings(configs: Iterable[RunConfig]) -> list[str]:
    """The settings a group sweeps: those (beside PAIRING_IGNORED) that differ between runs of
    the same BN arm and seed. A group of one setting has none."""
    by_run: dict[tuple[bool, int], list[dict[str, Any]]] = {}
    for config in configs:
        dump = config.model_dump(exclude=set(PAIRING_IGNORED))
        by_run.setdefault((config.bn, config.seed), []).append(dump)
    swept: list[str] = []
    for name in RunConfig.model_fields:
        if name not in swept and any(
            len({repr(d[name]) for d in dumps}) > 1 for dumps in by_run.values() if name in dumps[0]
        ):
            swept.append(name)
    return swept


def arm_name(config: RunConfig) -> str:
    """An arm in plot legends and titles: BN, GN, LN, BRN or GBN; no BN (no norm beside a
    norm that is not BatchNorm)."""
    if not config.bn:
        return "no BN" if config.norm == "batch" else "no norm"
    return NORM_TAGS[config.norm].upper()


def norm_cell(config: RunConfig) -> str:
    """The norm in a table cell: bn, gn, ln, brn, gbn, or off without normalization."""
    return config.norm_tag if config.bn else "off"


def norm_description(config: RunConfig) -> str:
    """The norm and the parameters it reads, for titles: e.g. "GroupNorm (G=4)"."""
    if not config.bn:
        return "no normalization"
    name = NORM_NAMES[config.norm]
    if config.norm == "group":
        return f"{name} (G={config.norm_groups})"
    if config.norm == "ghost":
        return f"{name} (N={config.ghost_batch_size})"
    if config.norm == "renorm":
        return (
            f"{name} (rmax {config.renorm_rmax:g}, dmax {config.renorm_dmax:g}, "
            f"warm-up {config.renorm_warmup_steps} steps)"
        )
    return name


def check_device_name(value: str) -> str:
    """The device name normalized ("CUDA:1 " -> "cuda:1"); ValueError for a name no run takes.
    Runs and the app settings share this rule."""
    value = value.strip().lower()
    if not _DEVICE_PATTERN.match(value):
        raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
    return value


def seed_range_problem(seed: int, seeds: int) -> str | None:
    """Why `seeds` runs starting at `seed` cannot all have valid seeds, or None if they can."""
    if seed + seeds - 1 <= MAX_SEED:
        return None
    return (
        f"{seeds} seeds from seed {seed} go past the largest seed, {MAX_SEED}: "
        f"start at seed {MAX_SEED - seeds + 1} or lower"
    )


def _parse_on_off(value: str) -> Any:
    lowered = value.strip().lower()
    if lowered in ("on", "true", "yes", "1"):
        return True
    if lowered in ("off", "false", "no", "0"):
        return False
    return value


def check_device_available(device: str) -> None:
    """Raise ValueError when `device` names hardware this machine does not have.

    Imports torch, so call it where training is about to happen, not at start-up."""
    from bntui.engine.device import absent_device_message, available_devices

    if device in ("auto", "cpu"):
        return
    present = available_devices()
    wanted = "cuda:0" if device == "cuda" else device
    if wanted not in {d.name for d in present}:
        raise ValueError(absent_device_message(device, [d.name for d in present]))


def format_validation_error(
    error: ValidationError, skip_prefixes: tuple[str, ...] = (), *, as_flags: bool = False
) -> str:
    """One line: `field: what is allowed` per problem, joined by '; ', never a traceback.

    `skip_prefixes` drops leading location parts that mean nothing to the user (the CLI's
    sub-command name, for example); `as_flags` names each field as the command line spells
    it (`--batch-size`), for errors about what the user typed there."""
    lines = []
    for item in error.errors():
        parts = [str(part) for part in item["loc"] if not isinstance(part, int)]
        while parts and parts[0] in skip_prefixes:
            parts.pop(0)
        location = ".".join(parts)
        message = plain_message(item)
        if location and not message.startswith(f"{location}:"):
            line = f"{location}: {message}"
        else:
            line = message
        lines.append(_flag_spelling(line) if as_flags else line)
    return "; ".join(lines) if lines else str(error)


_LEADING_NAME = re.compile(r"^([a-z][a-z0-9_]*)(?=: )")


def _flag_spelling(line: str) -> str:
    """`batch_size: ...` -> `--batch-size: ...` (a model check names its field in its text)."""
    return _LEADING_NAME.sub(lambda m: "--" + m[1].replace("_", "-"), line, count=1)


def plain_message(item: Any) -> str:
    if item["type"] == "extra_forbidden":
        return "unknown setting"
    message = str(item["msg"]).removeprefix("Value error, ")
    return message.replace("Input should be", "must be")


def field_errors(error: ValidationError) -> dict[str, str]:
    """Map each failing field to its message (the TUI shows it next to the field)."""
    result: dict[str, str] = {}
    for item in error.errors():
        message = plain_message(item)
        location = next((str(p) for p in item["loc"] if not isinstance(p, int)), "")
        if not location and ":" in message:
            location, message = (part.strip() for part in message.split(":", 1))
        result.setdefault(location, message)
    return result
