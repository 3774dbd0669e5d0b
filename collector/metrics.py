"""Self-metrics for /metrics (Prometheus exposition via prometheus-client).

A custom collector reads the service's own counters (collector.stats.Stats) and live
state (queue depth, sink spools, firing alerts) at scrape time, so nothing is counted
twice and the hot path only bumps plain integers. Each Service has its own
CollectorRegistry: several services in one process (the tests) do not clash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from collector.stats import LATENCY_BUCKETS, Stats

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics", "exposition"]


def _counter(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> CounterMetricFamily:
    metric = CounterMetricFamily(name, doc, labels=list(labels or {}))
    metric.add_metric(list((labels or {}).values()), value)
    return metric


class ServiceMetrics(Collector):
    def __init__(
        self,
        stats: Stats,
        *,
        queue_depth: Callable[[], int],
        queue_capacity: int,
        sinks: Sequence[Any],
        accounts: Callable[[], dict[str, int]],
        alerts: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self.stats = stats
        self._queue_depth = queue_depth
        self._queue_capacity = queue_capacity
        self._sinks = list(sinks)
        self._accounts = accounts
        self._alerts = alerts
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        yield _counter("hookflash_polls_sent", "SNMP requests sent.", s.polls_sent)
        yield _counter("hookflash_polls_failed", "SNMP polls that failed (any reason).", s.polls_failed)
        yield _counter(
            "hookflash_polls_timed_out", "SNMP polls that got no answer in time.", s.polls_timed_out
        )
        yield _counter(
            "hookflash_polls_skipped_inactive",
            "Polls not sent: account not active.",
            s.polls_skipped_inactive,
        )
        yield _counter("hookflash_messages_received", "MQTT messages received.", s.messages_received)
        yield _counter("hookflash_messages_quarantined", "Payloads quarantined as malformed.", s.quarantined)
        dropped = CounterMetricFamily(
            "hookflash_records_dropped", "Records not stored, by reason.", labels=["reason"]
        )
        for reason, value in (
            ("not_provisioned", s.dropped_not_provisioned),
            ("account_inactive", s.dropped_inactive),
            ("in_flight_at_stop", s.dropped_in_flight),
            ("queue_full", s.queue_overflow),
        ):
            dropped.add_metric([reason], value)
        yield dropped
        stored = CounterMetricFamily(
            "hookflash_records_stored",
            "Records written, per sink and retention class.",
            labels=["sink", "retention_class"],
        )
        for (sink, retention_class), value in sorted(s.stored_by_sink_class.items()):
            stored.add_metric([sink, retention_class], value)
        yield stored
        yield _counter("hookflash_sink_errors", "Failed sink writes (each is retried).", s.sink_errors)
        latency = HistogramMetricFamily(
            "hookflash_sink_write_seconds", "Time to write one batch to a sink.", labels=["sink"]
        )
        for sink, histogram in sorted(s.sink_write_latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip([*map(str, LATENCY_BUCKETS), "+Inf"], histogram.counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([sink], buckets, histogram.total_s)
        yield latency
        stops = CounterMetricFamily(
            "hookflash_collection_stops",
            "Stop events applied (AccountRevoked is a revocation).",
            labels=["event"],
        )
        for event, value in sorted(s.collection_stops.items()):
            stops.add_metric([event], value)
        yield stops
        queue = GaugeMetricFamily("hookflash_queue_depth", "Records waiting for the sinks.", labels=["queue"])
        queue.add_metric(["pipeline"], self._queue_depth())
        yield queue
        yield GaugeMetricFamily(
            "hookflash_queue_capacity", "Size of the pipeline queue.", value=self._queue_capacity
        )
        spool_bytes = GaugeMetricFamily(
            "hookflash_spool_bytes", "Bytes held in a sink's disk spool.", labels=["sink"]
        )
        spool_batches = GaugeMetricFamily(
            "hookflash_spool_batches", "Batches held in a sink's disk spool.", labels=["sink"]
        )
        for sink in self._sinks:
            for family, attribute in ((spool_bytes, "spool_bytes"), (spool_batches, "spool_batches")):
                found = getattr(sink, attribute, None)
                spooled = found() if callable(found) else found
                if isinstance(spooled, int | float):
                    family.add_metric([sink.name], spooled)
        yield spool_bytes
        yield spool_batches
        refused = CounterMetricFamily(
            "hookflash_spool_refused",
            "Records a sink's full spool refused (the embedded store still has them).",
            labels=["sink"],
        )
        for sink_name, value in sorted(s.spool_refused.items()):
            refused.add_metric([sink_name], value)
        yield refused
        yield GaugeMetricFamily(
            "hookflash_devices_seen", "Devices that sent data since start.", value=len(s.devices_seen)
        )
        accounts = GaugeMetricFamily("hookflash_accounts", "Accounts per status.", labels=["status"])
        for status, value in sorted(self._accounts().items()):
            accounts.add_metric([status], value)
        yield accounts
        alerts = GaugeMetricFamily("hookflash_alerts_firing", "Alerts firing, per rule.", labels=["rule"])
        for rule, value in sorted(self._alerts().items()):
            alerts.add_metric([rule], value)
        yield alerts


def exposition(metrics: ServiceMetrics) -> bytes:
    return generate_latest(metrics.registry)
