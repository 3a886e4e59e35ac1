"""bntui.tui.adapters: the private library API bntui relies on. These fail loudly when a new
Textual changes it (Textual is pinned exactly in pyproject.toml: this is the check to rerun)."""

from __future__ import annotations

from textual.app import App
from textual.dom import DOMNode
from textual.widgets import Static

from bntui.tui.adapters import being_removed


def test_textual_nodes_still_carry_the_pruning_flag():
    node = DOMNode()
    assert node._pruning is False  # the attribute being_removed reads, False until a removal


async def test_a_widget_counts_as_removed_from_the_moment_its_removal_starts():
    seen_while_unmounting: list[bool] = []

    class Probe(Static):
        def on_unmount(self) -> None:
            seen_while_unmounting.append(being_removed(self))

    app = App()
    async with app.run_test() as pilot:
        probe = Probe("probe")
        assert being_removed(probe)  # not mounted yet
        await app.screen.mount(probe)
        assert not being_removed(probe) and probe.display  # mounted and shown
        removal = probe.remove()
        assert being_removed(probe)  # at once, before the removal has finished
        await removal
        await pilot.pause()
    assert seen_while_unmounting == [True]
