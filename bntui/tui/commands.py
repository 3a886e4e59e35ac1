"""The command palette (ctrl+p) lists every action of the key table by name."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from bntui.tui.keys import KEYMAP, display_keys


def _entries():
    seen = set()
    for key in KEYMAP:
        if key.action in seen:
            continue
        seen.add(key.action)
        yield key


class ActionsProvider(Provider):
    def _run(self, action: str) -> None:
        self.app.call_later(self.app.run_action, action)

    async def discover(self) -> Hits:
        for key in _entries():
            yield DiscoveryHit(
                f"{key.description} ({display_keys(key.keys)})", partial(self._run, key.action), help=key.help
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for key in _entries():
            text = f"{key.description} ({display_keys(key.keys)})"
            score = max(matcher.match(text), matcher.match(key.help) * 0.8)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self._run, key.action), text=text, help=key.help)
