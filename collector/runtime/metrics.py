"""Self-metrics for /metrics (Prometheus exposition via prometheus-client).

A custom collector reads the service's own counters (collector.core.stats.Stats) and live
state (queue depth, sink spools, firing alerts) at scrape time, so nothing is counted
twice and the hot path only bumps plain integers. Each Service has its own
CollectorRegistry: several services in one process (the tests) do not clash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from collector.core.stats import LATENCY_BUCKETS, Stats
from collector.runtime.spooled import SpooledSink

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics", "exposition"]


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _per(
    family: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    doc: str,
    label: str,
    values: Iterable[tuple[str, float]],
) -> Metric:
    """A metric with one label, one sample per (label value, value)."""
    metric = family(name, doc, labels=[label])
    for key, value in values:
        metric.add_metric([key], value)
    return metric


class ServiceMetrics(Collector):
    def __init__(
        self,
        stats: Stats,
        *,
        queue_depth: Callable[[], int],
        queue_capacity: int,
        remote: Sequence[SpooledSink],
        accounts: Callable[[], dict[str, int]],
        alerts: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self.stats = stats
        self._queue_depth = queue_depth
        self._queue_capacity = queue_capacity
        self._remote = list(remote)
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
        yield _counter(
            "hookflash_intake_faults",
            "Items whose handling failed unforeseen: quarantined (or dropped) with the reason.",
            s.intake_faults,
        )
        yield _counter(
            "hookflash_source_faults", "Failures caught in a source's own network callbacks.", s.source_faults
        )
        yield _per(
            CounterMetricFamily,
            "hookflash_records_dropped",
            "Records not stored, by reason.",
            "reason",
            [
                ("not_provisioned", s.dropped_not_provisioned),
                ("account_inactive", s.dropped_inactive),
                ("in_flight_at_stop", s.dropped_in_flight),
                ("queue_full", s.queue_overflow),
            ],
        )
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
        yield _per(
            CounterMetricFamily,
            "hookflash_collection_stops",
            "Stop events applied (AccountRevoked is a revocation).",
            "event",
            sorted(s.collection_stops.items()),
        )
        yield _per(
            GaugeMetricFamily,
            "hookflash_queue_depth",
            "Records waiting for the sinks.",
            "queue",
            [("pipeline", self._queue_depth())],
        )
        yield GaugeMetricFamily(
            "hookflash_queue_capacity", "Size of the pipeline queue.", value=self._queue_capacity
        )
        spooled = self._remote
        yield _per(
            GaugeMetricFamily,
            "hookflash_spool_bytes",
            "Bytes held in a sink's disk spool.",
            "sink",
            [(sink.name, sink.spool_bytes) for sink in spooled],
        )
        yield _per(
            GaugeMetricFamily,
            "hookflash_spool_batches",
            "Batches held in a sink's disk spool.",
            "sink",
            [(sink.name, sink.spool_batches) for sink in spooled],
        )
        yield _per(
            CounterMetricFamily,
            "hookflash_spool_refused",
            "Records a sink's full spool refused (the embedded store still has them).",
            "sink",
            sorted(s.spool_refused.items()),
        )
        yield GaugeMetricFamily(
            "hookflash_devices_seen", "Devices that sent data since start.", value=len(s.devices_seen)
        )
        yield _per(
            GaugeMetricFamily,
            "hookflash_accounts",
            "Accounts per status.",
            "status",
            sorted(self._accounts().items()),
        )
        yield _per(
            GaugeMetricFamily,
            "hookflash_alerts_firing",
            "Alerts firing, per rule.",
            "rule",
            sorted(self._alerts().items()),
        )


def exposition(metrics: ServiceMetrics) -> bytes:
    return generate_latest(metrics.registry)
