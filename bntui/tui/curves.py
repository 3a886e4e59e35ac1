"""Which curves the plots show for the selected run and its BN/no-BN twin, styled by the theme:
colour tells runs apart, the marker tells training from validation (bntui.themes.curve_style)."""

from __future__ import annotations

from bntui.config import RunConfig, arm_name
from bntui.themes import ThemeFile, curve_style
from bntui.tui.run_view import RunView
from bntui.tui.widgets.metric_plot import Curve

STEP_MARKER = "·"  # the running train loss: sparse small points under the per-epoch lines
VAL_POINT = "•"  # validation: a point per epoch over its line (train: the line alone)
# Each arm keeps its colour on every screen: BN the theme's 1st series colour, no norm the 2nd,
# the other norms the next ones (in the order of bntui.config.Norm).
NORM_SLOTS = {"batch": 0, "group": 2, "layer": 3, "renorm": 4, "ghost": 5}


def arm_slot(config: RunConfig | None) -> int:
    """The colour slot of a run's arm (see NORM_SLOTS); 0 when its settings are unknown."""
    if config is None:
        return 0
    return NORM_SLOTS.get(config.norm, 0) if config.bn else 1


def _arm(view: RunView, paired: bool) -> str:
    if not paired or view.config is None:
        return ""
    return arm_name(view.config) + " "


def _step_marker(theme: ThemeFile, index: int, runs: int, no_color: bool) -> str:
    """Without colour every curve needs its own character: the step points take the theme's
    series markers after those of the runs' train and val curves (curve_style's slots)."""
    if not no_color:
        return STEP_MARKER
    markers = theme.series_markers
    return markers[(2 * runs + index) % len(markers)]


def curves_for(views: list[RunView], theme: ThemeFile, *, no_color: bool = False) -> tuple[list[Curve], list[Curve]]:
    """(loss curves, accuracy curves) for `views` (the selected run first)."""
    loss: list[Curve] = []
    accuracy: list[Curve] = []
    paired = len(views) > 1
    for index, view in enumerate(views):
        prefix = _arm(view, paired)
        slot = arm_slot(view.config)
        train = curve_style(theme, slot, "train", no_color=no_color)
        val = curve_style(theme, slot, "val", no_color=no_color)
        # Short legend: one entry per run (colour tells runs apart) or, for one run, train/val.
        short_train = prefix.strip() if paired else "train"
        short_val = "" if paired else "val"
        # Copies: the views keep growing while the plots wait for their next paint.
        epochs = [float(e) for e in view.curves.epoch]
        if view.progress_step:
            loss.append(
                Curve(
                    view.progress_epochs(),
                    list(view.progress_loss),
                    f"{prefix}train/step",
                    train.color,
                    _step_marker(theme, slot, 2, no_color),
                    scatter=True,
                )
            )
        for curves, train_values, val_values in (
            (loss, view.curves.train_loss, view.curves.val_loss),
            (accuracy, view.curves.train_accuracy, view.curves.val_accuracy),
        ):
            curves.append(
                Curve(epochs, list(train_values), f"{prefix}train", train.color, train.marker, short_label=short_train)
            )
            # With colour, validation is its run's line with a point on each epoch: a point
            # per measurement, joined (a dotted marker drew stair steps between epochs).
            val_marker, points = (val.marker, "") if no_color else (train.marker, VAL_POINT)
            curves.append(
                Curve(
                    epochs,
                    list(val_values),
                    f"{prefix}val",
                    val.color,
                    val_marker,
                    short_label=short_val,
                    points=points,
                )
            )
    return loss, accuracy
