"""One line about the selected run: id, epoch x/N, step, steps/s, ETA, device."""

from __future__ import annotations

from bntui.present.text import escape
from bntui.present.units import duration

from bntui.tui.run_view import RunView
from bntui.tui.widgets.parts_line import PartsLine


def describe_progress(view: RunView | None) -> str:
    if view is None:
        # Parts, so that a narrow line drops the last ones whole instead of cutting a word.
        return " · ".join(("No run selected", "[b]ctrl+r[/b] starts one", "with the settings on the left"))
    name = escape(view.run_id or view.label)
    parts = [f"[b]{view.status}[/b]"]
    if view.status == "queued":
        parts.append(f"{view.queue_place} ahead" if view.queue_place else "next")
        parts.append(name)
        return " · ".join(parts)
    # The figures that matter most first: a narrow line drops whole parts from the end.
    if view.test_accuracy is not None:
        parts.append(f"test acc {view.test_accuracy:.1%}")
    parts.append(f"epoch {view.epochs_done}/{view.epochs_total}")
    parts.append(f"step {view.step}")
    if view.steps_per_second and view.active:
        parts.append(f"{view.steps_per_second:.0f} steps/s")
    eta = view.eta_seconds
    if eta is not None:
        parts.append(f"ETA {duration(eta)}")
    if view.total_seconds is not None and not view.active:
        parts.append(duration(view.total_seconds))
    if view.device:
        parts.append(escape(view.device))
    if view.message and not view.active:
        parts.append(escape(view.message.splitlines()[0]))
    parts.append(name)  # last: ids are long, the figures matter more on a narrow terminal
    return " · ".join(parts)


class ProgressLine(PartsLine):
    _shown: str | None = None

    def show(self, view: RunView | None) -> None:
        text = describe_progress(view)
        if text != self._shown:  # called 4 times a second: repaint only on change
            self._shown = text
            # One row of fixed size: no layout pass (a layout of the whole screen costs far
            # more than this repaint, and this runs several times a second while training).
            self.update(text, layout=False)
