"""Which curves the plots show for the selected run and its BN/no-BN twin."""

from __future__ import annotations

from bntui.tui.palette import Palette
from bntui.tui.run_view import RunView
from bntui.tui.widgets.metric_plot import Curve


def _arm(view: RunView, paired: bool) -> str:
    if not paired or view.config is None:
        return ""
    return "BN " if view.config.bn else "no BN "


def curves_for(views: list[RunView], palette: Palette) -> tuple[list[Curve], list[Curve]]:
    """(loss curves, accuracy curves). Each run gets two colours (train, val); the running train
    loss shares the train colour and is drawn finer."""
    loss: list[Curve] = []
    accuracy: list[Curve] = []
    paired = len(views) > 1
    for index, view in enumerate(views):
        prefix = _arm(view, paired)
        train_color, val_color = palette.color(2 * index), palette.color(2 * index + 1)
        epochs = [float(e) for e in view.curves.epoch]
        if view.progress_step:
            loss.append(Curve(view.progress_epochs(), view.progress_loss, f"{prefix}train (steps)",
                              train_color, palette.running_marker))
        loss.append(Curve(epochs, view.curves.train_loss, f"{prefix}train", train_color, palette.train_marker))
        loss.append(Curve(epochs, view.curves.val_loss, f"{prefix}val", val_color, palette.val_marker))
        accuracy.append(Curve(epochs, view.curves.train_accuracy, f"{prefix}train", train_color, palette.train_marker))
        accuracy.append(Curve(epochs, view.curves.val_accuracy, f"{prefix}val", val_color, palette.val_marker))
    return loss, accuracy
