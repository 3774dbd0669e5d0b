"""In-process deactivation hooks, found through Python entry points.

A package declares, in its pyproject.toml:

    [project.entry-points."hookflash.deactivation"]
    crm = "mycrm.hooks:on_collection_stopped"

and the function is called with the receipt (a dict) every time collection stops for an
account or device. A failing hook is logged and audited; it never blocks the stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)
GROUP = "hookflash.deactivation"
Hook = Callable[[dict[str, Any]], object]


def load_hooks(group: str = GROUP) -> list[tuple[str, Hook]]:
    hooks: list[tuple[str, Hook]] = []
    for ep in entry_points(group=group):
        try:
            hooks.append((ep.name, ep.load()))
        except Exception as exc:  # a broken plugin must not stop hookflash from starting
            log.error("cannot load deactivation hook %s (%s): %s", ep.name, ep.value, exc)
    return hooks


def call_hooks(hooks: list[tuple[str, Hook]], receipt: dict[str, Any]) -> dict[str, str]:
    """Call each hook; return name → "ok" or the error, for the audit log."""
    outcome: dict[str, str] = {}
    for name, hook in hooks:
        try:
            hook(receipt)
            outcome[name] = "ok"
        except Exception as exc:
            log.exception("deactivation hook %s failed", name)
            outcome[name] = f"{type(exc).__name__}: {exc}"[:300]
    return outcome
