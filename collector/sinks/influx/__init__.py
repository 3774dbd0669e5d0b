"""InfluxDB v2 as a remote sink (any server speaking its write API): one bucket per
retention class, line protocol built by hookflash (its loop in C where it was built),
gzip'ed posts, the write API's status codes mapped, erasure by predicate."""

from collector.sinks.influx.lines import LineEncoder, line_protocol
from collector.sinks.influx.sink import InfluxSink, RejectedPoint
from collector.sinks.influx.writer import SinkRetry

__all__ = ["InfluxSink", "LineEncoder", "RejectedPoint", "SinkRetry", "line_protocol"]
