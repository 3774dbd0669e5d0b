"""The counters the runtime keeps: bumped as plain integers on the hot path, read by the
demo's progress table and by /metrics at scrape time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Sink write latency buckets (seconds), for the /metrics histogram.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class LatencyHistogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))  # last: +Inf
    total_s: float = 0.0

    def observe(self, seconds: float) -> None:
        self.total_s += seconds
        bucket = next((i for i, b in enumerate(LATENCY_BUCKETS) if seconds <= b), len(LATENCY_BUCKETS))
        self.counts[bucket] += 1


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
    source_faults: int = 0  # failures in a source's own network callbacks, caught there
    intake_faults: int = 0  # items whose handling raised: quarantined (or dropped) with the reason
    sink_errors: int = 0
    polls_timed_out: int = 0
    stored_by_sink_class: Counter[tuple[str, str]] = field(default_factory=Counter)
    sink_write_latency: dict[str, LatencyHistogram] = field(default_factory=dict)
    collection_stops: Counter[str] = field(default_factory=Counter)  # lifecycle event type -> count
    spool_refused: Counter[str] = field(default_factory=Counter)  # sink -> records refused, spool full

    def sink_wrote(self, sink: str, per_class: Counter[str], seconds: float) -> None:
        """One successful write of a batch to a sink (called from the writer thread)."""
        for retention_class, count in per_class.items():
            self.stored_by_sink_class[sink, retention_class] += count
        self.sink_write_latency.setdefault(sink, LatencyHistogram()).observe(seconds)

    @property
    def stored(self) -> int:
        return sum(self.stored_by_kind.values())
