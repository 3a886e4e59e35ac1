"""An Input that applies its editing keys in the order they arrive, so a paste is never lost.

Textual runs an Input's own key bindings (backspace, delete, ctrl+u, left, ...) only once the
key has bubbled back up to the app, while a paste goes straight to the Input: a Backspace and a
paste sent in one burst were applied paste first, so clearing "12" and pasting "3" left "1".
Here the Input runs its own bindings as the key reaches it, in line with the paste."""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class FieldInput(Input):
    async def _on_key(self, event: events.Key) -> None:
        if not event.is_printable:
            for binding in self._bindings.key_to_bindings.get(event.key, ()):
                if not binding.priority:
                    event.stop()  # handled here: it must not reach the app's binding check too
                    event.prevent_default()
                    await self.run_action(binding.action)
                    return
        await super()._on_key(event)
