"""The settings form: Dataset, Architecture, Normalization and Training panes.

Every value is validated by bntui.config (the single source of truth); a field that does not
validate shows the message right under it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import ValidationError
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from bntui.config import (
    ARCHITECTURES,
    DATASETS,
    DEFAULT_DROPOUT,
    DEFAULT_EPOCHS,
    Activation,
    BATCH_STATISTICS_NORMS,
    NORM_PARAMETERS,
    BnChoice,
    Norm,
    Optimizer,
    Placement,
    RunConfig,
    TrainingFields,
    MAX_SEEDS,
    default_seeds,
    field_errors,
    seed_range_problem,
)
from bntui.settings import Backend
from bntui.tui.devices import DeviceChoice, device_options
from bntui.tui.messages import SettingsChanged
from bntui.tui.widgets.field_input import FieldInput
from bntui.present.words import counted

# Fields left empty fall back to the architecture's default (lab: mlp 10 epochs, lenet5 20 + dropout 0.3).
OPTIONAL_FIELDS = ("epochs", "dropout")


@dataclass
class FormReading:
    """What the form holds: validated fields, or the message of each invalid one."""

    fields: TrainingFields | None
    bn: str
    seeds: int
    errors: dict[str, str] = field(default_factory=dict)
    backend: Backend | None = None  # where to train, when the form offers a choice (SLURM found)
    grid: dict[str, list[str]] = field(default_factory=dict)  # comma lists in fields: a sweep

    @property
    def run_count(self) -> int:
        """How many runs ctrl+r launches: each combination of the grid, per seed and BN arm."""
        from bntui.sweep import grid_size

        return grid_size(self.grid) * self.seeds * (2 if self.bn == "both" else 1)


def _arch_defaults(defaults: Mapping[str, float]) -> str:
    """Placeholder of a field left empty: e.g. "mlp 10, lenet5 20"."""
    return ", ".join(f"{arch} {value:g}" for arch, value in defaults.items())


def _choices(values: Any) -> list[tuple[str, str]]:
    """Options from a tuple of values or from a Literal type of bntui.config."""
    return [(value, value) for value in (values if isinstance(values, tuple) else get_args(values))]


def _format_size(size_bytes: int | None) -> str:
    if not size_bytes:
        return ""
    size = float(size_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def describe_dataset(name: str, data_dir: Path) -> str:
    """One line for the Dataset pane: is it here, how big, what shape (no paths: they vary)."""
    try:
        from bntui.engine.data import dataset_info  # looks at the disk only, no torch

        info = dataset_info(name, data_dir)
    except Exception as exc:  # an unreadable data dir must not take the form down
        return f"unknown ({exc})"
    if not info.present:
        # Say how to get it: the form has no download switch, the command line and config do.
        where = "[b]missing[/b]: --download (or download = true in the config) fetches it"
    else:
        where = "[b]built in[/b]" if info.location == "embedded" else "[b]present[/b]"
        where += f" · {_format_size(info.size_bytes)}"
    return f"{where} · images {'x'.join(map(str, info.image_shape))}"


class Pane(Vertical):
    """A bordered, titled group of fields."""

    can_focus = False

    def __init__(self, title: str, *children: Widget, id: str | None = None) -> None:
        super().__init__(*children, id=id, classes="pane")
        self.border_title = title


def field_row(label: str, name: str, control: Widget) -> list[Widget]:
    control.id = f"field-{name}"
    control.add_class("field-control")
    # A field that only some choices read says so at its end while greyed (see _update_applies).
    why = [Static("", id=f"why-{name}", classes="field-why")] if name in APPLIES_FOR else []
    return [
        Horizontal(Label(label, classes="field-label"), control, *why, classes="field-row"),
        Static("", id=f"error-{name}", classes="field-error"),
    ]


def _described(name: str) -> str | None:
    """The setting's description in bntui.config, as the field's tooltip."""
    return TrainingFields.model_fields[name].description


DIAGNOSTICS_TIP = "BatchNorm diagnostics (d on a run) every N training steps; 0 turns them off"
LANDSCAPE_TIP = (
    "Loss-landscape measurements (l on a run) every N training steps; 0 turns them "
    "off; each costs 9 forward-backward passes of the batch"
)
NORM_TIP = "on: the chosen norm; off: none; both: paired runs, same init and batches"
SEED_TIP = "the seed of the first run (pair); the next ones count up from it"
SEEDS_TIP = (
    "how many seeds, counting up from the first seed: with normalize = both, each seed is "
    "a BN / no-BN pair; left empty: 3 pairs with both (fewer is fragile), else 1"
)
HIDDEN_TIP = "the MLP's hidden layer sizes; LeNet-5's layers are fixed, so it ignores them"
# Settings that only some norms read, and the architectures' own: the choice (norm or arch)
# each depends on and the values that read it. A field that does not apply is greyed and says
# why, but keeps its place: hidden rows changed what the same number of Tabs reached.
APPLIES_FOR: dict[str, tuple[str, tuple[str, ...]]] = {
    "hidden_sizes": ("arch", ("mlp",)),
    **{name: ("norm", (norm,)) for norm, names in NORM_PARAMETERS.items() for name in names},
    "bn_momentum": ("norm", BATCH_STATISTICS_NORMS),  # GroupNorm, LayerNorm: no running statistics
}


class SettingsForm(VerticalScroll):
    def __init__(
        self,
        data_dir: Path,
        device: str = "auto",
        devices: list[DeviceChoice] | None = None,
        *,
        backends: tuple[str, ...] = ("local",),
        backend: str = "local",
        id: str | None = None,
    ) -> None:
        """`devices` None: not known yet (the app calls `set_devices` once detected);
        `backends`: where runs can train here ("slurm" when sbatch is on the PATH): with more
        than one, the Training pane offers the choice, starting on `backend`."""
        super().__init__(id=id)
        self.backends = backends
        self.backend = backend if backend in backends else backends[0]
        self._preset_extras: dict[str, Any] = {}  # preset settings without a field of their own
        self.data_dir = data_dir
        self.initial_device = device
        self.devices = devices
        self._controls: dict[str, Any] = {}  # field name -> its Input / Select / Checkbox
        self._error_labels: dict[str, Static] = {}
        self._shown_errors: dict[str, str] = {}
        self._validation_pending = False

    def compose(self) -> ComposeResult:
        d = TrainingFields()
        yield Pane(
            "Dataset",
            *field_row(
                "dataset", "dataset", Select(_choices(DATASETS), value=d.dataset, allow_blank=False, compact=True)
            ),
            Static("", id="dataset-info"),
            id="pane-dataset",
        )
        yield Pane(
            "Architecture",
            *field_row(
                "network", "arch", Select(_choices(ARCHITECTURES), value=d.arch, allow_blank=False, compact=True)
            ),
            *field_row(
                "hidden",
                "hidden_sizes",
                FieldInput(",".join(map(str, d.hidden_sizes)), compact=True, tooltip=HIDDEN_TIP),
            ),
            *field_row(
                "activation",
                "activation",
                Select(_choices(Activation), value=d.activation, allow_blank=False, compact=True),
            ),
            *field_row("dropout", "dropout", FieldInput("", placeholder=_arch_defaults(DEFAULT_DROPOUT), compact=True)),
            id="pane-architecture",
        )
        yield Pane(
            "Normalization",
            *field_row(
                "normalize",
                "bn",
                Select(_choices(BnChoice), value="both", allow_blank=False, compact=True, tooltip=NORM_TIP),
            ),
            *field_row("norm", "norm", Select(_choices(Norm), value=d.norm, allow_blank=False, compact=True)),
            *field_row(
                "groups", "norm_groups", FieldInput(str(d.norm_groups), compact=True, tooltip=_described("norm_groups"))
            ),
            *field_row(
                "ghost size",
                "ghost_batch_size",
                FieldInput(str(d.ghost_batch_size), compact=True, tooltip=_described("ghost_batch_size")),
            ),
            *field_row(
                "rmax", "renorm_rmax", FieldInput(f"{d.renorm_rmax:g}", compact=True, tooltip=_described("renorm_rmax"))
            ),
            *field_row(
                "dmax", "renorm_dmax", FieldInput(f"{d.renorm_dmax:g}", compact=True, tooltip=_described("renorm_dmax"))
            ),
            *field_row(
                "warm-up",
                "renorm_warmup_steps",
                FieldInput(str(d.renorm_warmup_steps), compact=True, tooltip=_described("renorm_warmup_steps")),
            ),
            *field_row(
                "momentum",
                "bn_momentum",
                FieldInput(str(d.bn_momentum), compact=True, tooltip=_described("bn_momentum")),
            ),
            *field_row("eps", "bn_eps", FieldInput(str(d.bn_eps), compact=True)),
            *field_row(
                "affine",
                "bn_affine",
                Checkbox("scale, shift", d.bn_affine, compact=True, tooltip="learn the norm's scale γ and shift β"),
            ),
            *field_row(
                "placement",
                "bn_placement",
                Select(_choices(Placement), value=d.bn_placement, allow_blank=False, compact=True),
            ),
            *field_row(
                "diag every",
                "diagnostics_every",
                FieldInput(str(d.diagnostics_every), compact=True, tooltip=DIAGNOSTICS_TIP),
            ),
            *field_row(
                "landscape", "landscape_every", FieldInput(str(d.landscape_every), compact=True, tooltip=LANDSCAPE_TIP)
            ),
            id="pane-normalization",
        )
        yield Pane(
            "Training",
            *field_row("epochs", "epochs", FieldInput("", placeholder=_arch_defaults(DEFAULT_EPOCHS), compact=True)),
            *field_row("lr", "lr", FieldInput(str(d.lr), compact=True)),
            *field_row("batch size", "batch_size", FieldInput(str(d.batch_size), compact=True)),
            *field_row(
                "optimizer",
                "optimizer",
                Select(_choices(Optimizer), value=d.optimizer, allow_blank=False, compact=True),
            ),
            *field_row("first seed", "seed", FieldInput(str(d.seed), compact=True, tooltip=SEED_TIP)),
            *field_row(
                "seed pairs",
                "seeds",
                FieldInput("", placeholder=str(default_seeds("both")), compact=True, tooltip=SEEDS_TIP),
            ),
            *field_row(
                "device",
                "device",
                Select(
                    device_options(self.devices),
                    value=self._device_value(self.devices),
                    allow_blank=False,
                    compact=True,
                ),
            ),
            *self._backend_row(),
            Button("Start  ^r", id="start", variant="primary", compact=True),
            id="pane-training",
        )

    def _backend_row(self) -> list[Widget]:
        if len(self.backends) < 2:
            return []
        choices = Select(
            _choices(self.backends),
            value=self.backend,
            allow_blank=False,
            compact=True,
            tooltip="local: processes on this machine; slurm: one cluster job per run",
        )
        return field_row("run on", "backend", choices)

    def on_mount(self) -> None:
        # Looked up once: validation runs on every keystroke.
        self._controls = {(w.id or "").removeprefix("field-"): w for w in self.query(".field-control")}
        self._error_labels = {
            (w.id or "").removeprefix("error-"): w for w in self.query(".field-error").results(Static)
        }
        self._update_dataset_info()
        self._update_applies()
        self.validate_now()

    # -- reading and validating ------------------------------------------------------------
    def value(self, name: str) -> Any:
        return self._controls[name].value

    def set_value(self, name: str, value: Any) -> None:
        self._controls[name].value = value

    def apply_values(self, values: dict[str, Any]) -> None:
        """Fill the form from setting values (a preset); settings the form has no field for
        are kept aside and go into the launch as they are (e.g. the preset's SGD momentum).
        Inputs take text, choice lists take the value itself."""
        self._preset_extras = {
            name: value
            for name, value in values.items()
            if name not in self._controls and name in TrainingFields.model_fields
        }
        for name, value in values.items():
            control = self._controls.get(name)
            if control is None:
                continue
            if isinstance(control, Input):
                value = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            control.value = value
        self.validate_now()

    def read(self) -> FormReading:
        data: dict[str, Any] = dict(self._preset_extras)
        for name in (name for name in TrainingFields.model_fields if name in self._controls):
            if self._controls[name].disabled or not self._applies(name):
                continue  # e.g. hidden sizes with LeNet-5: they do not apply, so they cannot block a start
            value = self.value(name)
            if isinstance(value, str):
                value = value.strip()
                if name in OPTIONAL_FIELDS and not value:
                    value = None
            data[name] = value
        bn = str(self.value("bn"))
        errors: dict[str, str] = {}
        seeds = default_seeds(bn)
        try:
            typed = self.value("seeds").strip()  # left empty: the default for this choice of bn
            seeds = int(typed) if typed else seeds
            if not 1 <= seeds <= MAX_SEEDS:
                raise ValueError
        except ValueError:
            errors["seeds"] = f"must be a whole number from 1 to {MAX_SEEDS}"
        data, grid = self._take_grid(data, errors)
        fields: TrainingFields | None = None
        try:
            fields = TrainingFields(**data)
            # Combinations only a full config checks (e.g. BatchNorm needs batches of 2 or more).
            RunConfig(**fields.model_dump(), bn=bn != "off")
        except ValidationError as exc:
            errors.update(field_errors(exc))
            fields = None
        if fields is not None and "seeds" not in errors:
            if problem := seed_range_problem(fields.seed, seeds):
                errors["seeds"] = problem
        backend: Backend | None = self.value("backend") if "backend" in self._controls else None
        return FormReading(fields, bn, seeds, errors, backend, grid)

    @staticmethod
    def _take_grid(data: dict[str, Any], errors: dict[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """The CLI's list syntax: "0.01,0.1" in a field sweeps it. The first value stands in
        for the form's checks; every other one is checked here, by the same model."""
        from bntui.sweep import GridError, take_grid

        try:
            single, grid = take_grid(data)
        except GridError as exc:
            name, _, message = str(exc).partition(": ")
            errors[name] = message
            return data, {}
        for name, values in grid.items():
            for value in values[1:]:
                try:
                    TrainingFields(**{**single, name: value})
                except ValidationError as exc:
                    problem = field_errors(exc).get(name)
                    if problem:
                        errors.setdefault(name, f"{value}: {problem}")
                        break
        return single, grid

    def show_errors(self, errors: dict[str, str]) -> None:
        for name, label in self._error_labels.items():
            message = errors.get(name, "")
            if message == self._shown_errors.get(name, ""):
                continue  # unchanged: updating would cost a layout pass per keystroke
            self._shown_errors[name] = message
            label.update(message)
            label.set_class(bool(message), "-shown")
            self._controls[name].set_class(bool(message), "-invalid")

    def validate_now(self) -> FormReading:
        reading = self.read()
        self.show_errors(reading.errors)
        self._show_run_count(reading)
        self.post_message(SettingsChanged(reading.errors))
        return reading

    def _show_run_count(self, reading: FormReading) -> None:
        """A grid says how many runs it makes on the Start button, before ctrl+r."""
        label = f"Start {counted(reading.run_count, 'run')}  ^r" if reading.grid else "Start  ^r"
        button = self.query_one("#start", Button)
        if str(button.label) != label:
            button.label = label

    # -- devices and dataset info ----------------------------------------------------------
    def _device_value(self, devices: list[DeviceChoice] | None) -> str:
        """The configured default device when this machine has it, else auto."""
        values = [value for _, value in device_options(devices)]
        return self.initial_device if self.initial_device in values else "auto"

    def set_devices(self, devices: list[DeviceChoice]) -> None:
        self.devices = devices
        select: Select[str] = self._controls["device"]
        current = select.value
        select.set_options(device_options(devices))
        values = [value for _, value in device_options(devices)]
        select.value = current if current != "auto" and current in values else self._device_value(devices)
        if self.initial_device not in values:  # e.g. device = "cuda" in the config, on a CPU box
            self.app.notify(
                f"device {self.initial_device!r} from the settings is not on this machine; using auto",
                severity="warning",
                markup=False,
            )
        # Select only redraws its label when the value changes; "auto" stays "auto" while its
        # label changes from "detecting..." to the device found, so redraw it regardless.
        select.mutate_reactive(Select.value)  # type: ignore[misc]  # Textual's documented call

    def _update_dataset_info(self) -> None:
        self.query_one("#dataset-info", Static).update(describe_dataset(str(self.value("dataset")), self.data_dir))

    def _applies(self, name: str) -> bool:
        """Whether the chosen architecture and norm read this setting."""
        if name not in APPLIES_FOR:
            return True
        choice, readers = APPLIES_FOR[name]
        return self.value(choice) in readers

    def _update_applies(self) -> None:
        """Grey the fields the chosen architecture and norm do not read, each saying why
        ("group only"). Greyed, not hidden or disabled: either takes a field out of the Tab
        order, and the same number of Tabs must reach the same field whatever the choices.
        A greyed field is not read (see read), so its error, if any, goes with it."""
        for name, (choice, readers) in APPLIES_FOR.items():
            applies = self._applies(name)
            control = self._controls[name]
            control.set_class(not applies, "-not-applicable")
            if control.parent is not None:
                control.parent.set_class(not applies, "-not-applicable")  # the row: label, why
            why = f"{readers[0]} only" if len(readers) == 1 else f"not for {self.value(choice)}"
            self.query_one(f"#why-{name}", Static).update("" if applies else why)

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "field-dataset":
            self._update_dataset_info()
        elif event.select.id in ("field-arch", "field-norm"):
            self._update_applies()
        elif event.select.id == "field-bn":
            # An empty seeds field means the default, which depends on bn: show which.
            self._controls["seeds"].placeholder = str(default_seeds(str(event.value)))
        self._schedule_validation()

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _value_changed(self) -> None:
        self._schedule_validation()

    def _schedule_validation(self) -> None:
        """Validate once after a burst of changes (mounting fires one per field)."""
        if self._controls and not self._validation_pending:
            self._validation_pending = True
            self.call_after_refresh(self._validate_scheduled)

    def _validate_scheduled(self) -> None:
        self._validation_pending = False
        self.validate_now()
