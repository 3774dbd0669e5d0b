"""Counters the service keeps for live progress (and, later, /metrics)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Stats:
    devices_seen: set[str] = field(default_factory=set)
    stored_by_kind: Counter[str] = field(default_factory=Counter)
    quarantined: int = 0
    dropped_not_provisioned: int = 0
    dropped_inactive: int = 0
    dropped_in_flight: int = 0
    queue_overflow: int = 0
    polls_sent: int = 0
    polls_failed: int = 0
    poll_errors: Counter[str] = field(default_factory=Counter)
    polls_skipped_inactive: int = 0
    messages_received: int = 0
    sink_errors: int = 0

    @property
    def stored(self) -> int:
        return sum(self.stored_by_kind.values())
