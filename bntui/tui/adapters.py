"""The one place bntui uses a library's private API, because no public one does the job; each
use has a test in tests/test_adapters.py that fails loudly when the library changes.

Textual, `DOMNode._pruning`: whether a node's widgets can still be queried. Textual removes a
screen's widgets (when the screen is popped, or all of them when the app shuts down) one await
at a time, and timers keep firing in between: a redraw tick that lands there finds some widgets
gone and raises NoMatches. Callbacks that query widgets ask `being_removed` first. The public
`display` says False then too, but also for a widget merely hidden by CSS."""

from __future__ import annotations

from textual.dom import DOMNode


def being_removed(node: DOMNode) -> bool:
    # `_pruning` is set on every node of a subtree the moment its removal starts; Textual's own
    # signal delivery checks it the same way (textual/signal.py), and Textual is pinned exactly.
    return not node.app.is_running or not node.is_attached or node._pruning
