"""InfluxDB v2 write path: points/s through InfluxSink.write versus pre-built line protocol
posted with http.client, in the same run, to a real VictoriaMetrics on loopback.

Both paths write the same points (call-quality records of 1,000 devices in 250 accounts:
4 tags, 5 fields of which one is text, timestamps within the last hour) in 5,000-line posts
to the same bucket, over one keep-alive connection each:

- sink: `InfluxSink.write` given 5,000 TelemetryRecords (built beforehand) per call; the
  clock covers line-protocol building, gzip, the HTTP post and the status handling;
- raw HTTP: the same points' lines, built beforehand, joined and posted with http.client;
  the clock covers joining, compressing (when the sink compresses: same Content-Encoding,
  same level, so both put the same bytes on the wire) and the post.

Two more paths, reported beside them but not in the RESULT ratio, are the ones the service
takes, through `SpooledSink` (the disk spool and its worker) into the same sink; the clock
stops when the server has taken the last point:
- spool: the pipeline's batches (its batch size: 5,000) appended while the worker sends, the backlog kept
  under 10,000 records (the service brings a few thousand records a second, not a burst);
- replay: all the points already in the spool's files (after an outage or a restart), read
  back and sent.

A warm-up pass creates every series first (VictoriaMetrics is slower on new series), then
the two paths alternate, `--rounds` times each, taking turns at going first (a pass that
follows another pays for VictoriaMetrics merging what that one wrote), so drift in the
machine's load hits both alike; the spool and replay passes come after them.
The figures are total points over total time per path. Each round also reports the CPU
spent per point by this process and by VictoriaMetrics (from /proc), which is where the
difference between the paths goes.

The sink builds its lines with the encoder's C loop when it was built (the default install
builds it); `--python-loop` measures the Python loop instead.

Usage: python bench/write_path.py [--quick] [--points N] [--rounds R] [--gzip-level L]
[--python-loop] (needs the Debian package victoria-metrics). The last line is
`RESULT sink_points_per_s=… raw_http_points_per_s=… ratio=…`.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import inspect
import os
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from collector.core.records import Kind, TelemetryRecord  # noqa: E402
from collector.core.stats import Stats  # noqa: E402
from collector.runtime.pipeline import Pipeline  # noqa: E402
from collector.runtime.service import tune_gc  # noqa: E402
from collector.runtime.spool import Spool  # noqa: E402
from collector.runtime.spooled import SpooledSink  # noqa: E402
from collector.sinks.influx import InfluxSink  # noqa: E402
from collector.sinks.influx import lines as influx_lines  # noqa: E402
from collector.sinks.influx.lines import LineEncoder  # noqa: E402
from services import VictoriaMetrics  # noqa: E402

BATCH = 5000
# What the service's pipeline hands its sinks at a time, when it is busy.
PIPELINE_BATCH: int = inspect.signature(Pipeline.__init__).parameters["batch_size"].default
LIVE_BACKLOG = 10_000
DEVICES = 1000
ACCOUNTS = 250
CLASS = "operational"
BUCKET = f"hookflash-{CLASS}"


def build_records(count: int) -> list[TelemetryRecord]:
    start = datetime.now(UTC) - timedelta(hours=1)
    return [
        TelemetryRecord(
            device_id=f"000b82{n % DEVICES:06x}",
            account_id=f"acct-{n % DEVICES % ACCOUNTS:04d}",
            kind=Kind.CALL_QUALITY,
            observed_at=start + timedelta(microseconds=n * 500),
            fields={
                "mos": round(3.5 + (n % 97) / 100, 2),
                "jitter_ms": n % 40,
                "loss_pct": round((n % 13) / 10, 1),
                "rtt_ms": 20 + n % 9,
                "codec": ("G722", "PCMU", "OPUS")[n % 3],
            },
            retention_class=CLASS,
            source="snmp",
            model="HT812",
            firmware=("1.0.47.4", "1.0.49.2")[n % 2],
        )
        for n in range(count)
    ]


def sink_pass(url: str, records: list[TelemetryRecord], gzip_level: int) -> float:
    sink = InfluxSink(url, "hookflash", "bench-token", [CLASS], gzip_level=gzip_level, batch_lines=BATCH)
    try:
        started = time.perf_counter()
        for i in range(0, len(records), BATCH):
            sink.write(records[i : i + BATCH])
        elapsed = time.perf_counter() - started
        assert sink.written == len(records) and sink.rejected == 0, (sink.written, sink.rejected)
        return elapsed
    finally:
        sink.close()


def spooled_pass(url: str, records: list[TelemetryRecord], gzip_level: int, directory: Path) -> float:
    """The service's path while the server keeps up: the pipeline's batches appended to the spool
    while the worker sends, the backlog held under LIVE_BACKLOG records (the service's
    pipeline brings a few thousand records a second, not a burst of all of them)."""
    inner = InfluxSink(url, "hookflash", "bench-token", [CLASS], gzip_level=gzip_level, batch_lines=BATCH)
    sink = SpooledSink(inner, directory, Stats(), max_bytes=1 << 32)
    sink.start()
    try:
        started = time.perf_counter()
        for i in range(0, len(records), PIPELINE_BATCH):
            while sink.spool_batches * PIPELINE_BATCH >= LIVE_BACKLOG:
                time.sleep(0.0005)
            assert sink.write(records[i : i + PIPELINE_BATCH]) == len(records[i : i + PIPELINE_BATCH])
        return _sent(inner, len(records), started)
    finally:
        sink.close()


def replay_pass(url: str, records: list[TelemetryRecord], gzip_level: int, directory: Path) -> float:
    """After an outage or a restart: everything is in the spool's files, read back and sent."""
    spool = Spool(directory, 1 << 32, memory_records=0)
    for i in range(0, len(records), PIPELINE_BATCH):
        spool.append(records[i : i + PIPELINE_BATCH])
    spool.close()
    inner = InfluxSink(url, "hookflash", "bench-token", [CLASS], gzip_level=gzip_level, batch_lines=BATCH)
    sink = SpooledSink(inner, directory, Stats(), max_bytes=1 << 32)
    try:
        started = time.perf_counter()
        sink.start()
        return _sent(inner, len(records), started)
    finally:
        sink.close()


def _sent(inner: InfluxSink, count: int, started: float) -> float:
    while inner.written < count:
        time.sleep(0.001)
    elapsed = time.perf_counter() - started
    assert inner.written == count and inner.rejected == 0, (inner.written, inner.rejected)
    return elapsed


def raw_pass(url: str, lines: list[str], gzip_level: int) -> float:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    query = urllib.parse.urlencode({"org": "hookflash", "bucket": BUCKET, "precision": "ns"})
    headers = {"Authorization": "Token bench-token", "Content-Type": "text/plain; charset=utf-8"}
    if gzip_level:
        headers["Content-Encoding"] = "gzip"
    try:
        started = time.perf_counter()
        for i in range(0, len(lines), BATCH):
            body = "\n".join(lines[i : i + BATCH]).encode()
            if gzip_level:
                body = gzip.compress(body, gzip_level)
            conn.request("POST", f"/api/v2/write?{query}", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 204:
                raise RuntimeError(f"raw post answered HTTP {response.status}")
        return time.perf_counter() - started
    finally:
        conn.close()


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) of a process, this one by default."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 points a pass (< 60 s)")
    parser.add_argument("--points", type=int, help="points per pass (default 300,000; quick: 100,000)")
    parser.add_argument("--rounds", type=int, default=4, help="timed passes of each path")
    parser.add_argument("--gzip-level", type=int, default=1, help="both paths; 0: uncompressed")
    parser.add_argument("--python-loop", action="store_true", help="the sink encodes without the C loop")
    args = parser.parse_args()
    if args.python_loop:
        influx_lines.NATIVE = False  # what LineEncoder() looks at
    print(f"line encoder: {'the C loop' if influx_lines.NATIVE else 'the Python loop'}", flush=True)
    count = args.points or (100_000 if args.quick else 300_000)
    count -= count % BATCH
    print(f"building {count:,} records and their lines ...", flush=True)
    records = build_records(count)
    lines = LineEncoder().lines(records)
    tune_gc()  # as the service does when it starts (and the records built here stay out of its passes)
    with tempfile.TemporaryDirectory(prefix="hookflash-bench-") as tmp, VictoriaMetrics(Path(tmp)) as vm:
        raw_pass(vm.url, lines, args.gzip_level)  # warm-up: creates every series
        totals = {"sink": 0.0, "raw": 0.0, "spool": 0.0, "replay": 0.0}
        passes: dict[str, Callable[[], float]] = {
            "sink": lambda: sink_pass(vm.url, records, args.gzip_level),
            "raw": lambda: raw_pass(vm.url, lines, args.gzip_level),
            "spool": lambda: spooled_pass(vm.url, records, args.gzip_level, Path(tmp) / "spool"),
            "replay": lambda: replay_pass(vm.url, records, args.gzip_level, Path(tmp) / "replay"),
        }
        pairs = [("sink", "raw") if n % 2 else ("raw", "sink") for n in range(1, args.rounds + 1)]
        order = [(n, name) for n, pair in enumerate(pairs, 1) for name in pair]
        order += [(n, name) for name in ("spool", "replay") for n in range(1, args.rounds + 1)]
        for round_, name in order:
            ours, theirs = cpu_s(), cpu_s(vm.pid)
            elapsed = passes[name]()
            ours, theirs = cpu_s() - ours, cpu_s(vm.pid) - theirs
            totals[name] += elapsed
            print(
                f"round {round_} {name:6s}: {count / elapsed:>9,.0f} points/s; CPU per point: "
                f"hookflash {ours / count * 1e6:.1f} µs, VictoriaMetrics {theirs / count * 1e6:.1f} µs",
                flush=True,
            )
        stored = sum(len(series["values"]) for series in vm.export('{__name__="call_quality_mos"}'))
    sink_rate = count * args.rounds / totals["sink"]
    raw_rate = count * args.rounds / totals["raw"]
    print(f"call_quality_mos samples stored: {stored:,} ({(4 * args.rounds + 1) * count:,} posted)")
    spooled = {"spool": "through the spool while the server keeps up", "replay": "replayed from disk"}
    for name, what in spooled.items():
        rate = count * args.rounds / totals[name]
        print(f"{what}: {rate:.0f} points/s ({rate / raw_rate:.2f}x raw)")
    print(
        f"RESULT sink_points_per_s={sink_rate:.0f} raw_http_points_per_s={raw_rate:.0f} "
        f"ratio={sink_rate / raw_rate:.2f}"
    )


if __name__ == "__main__":
    main()
