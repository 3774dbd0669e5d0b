"""InfluxDB v2 sink (influxdb-client): one bucket per retention class, device/account/model/
firmware as tags, telemetry as fields, gzip'ed line-protocol posts of at most `batch_lines`.

Any server speaking the InfluxDB v2 write API receives the numeric series (VictoriaMetrics
does; it keeps text fields as 0). Status handling, per the write API:
- 413: the post is split in halves until the server takes it (a single line still too
  large is rejected, as below);
- 400 / 422: the post is bisected until the offending lines are isolated; the good points
  are written, each rejected one is reported through `on_rejected` (the quarantine) with
  the server's reason, and nothing is raised: one bad point must not block the sink;
- 401 / 403 (and 404, an unknown bucket or org): the batch is kept (`SinkRetry`), the
  failure logged at ERROR and counted in `auth_failures`;
- 429 / 5xx and connection errors: `SinkRetry`, with the server's Retry-After.

Lines are built by hookflash (lines.py) and posts gzip'ed at level 1 by default: ~11x
smaller than the text at a third of the CPU of level 9.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import TYPE_CHECKING

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.rest import ApiException

from collector.core.errors import NotErasedHere
from collector.core.records import Anonymization, RetentionClass, TelemetryRecord
from collector.sinks.influx.lines import LineEncoder, join_lines, line_protocol
from collector.sinks.influx.status import isolation_budget, server_message
from collector.sinks.influx.writer import CONNECTION_ERRORS, Refused, SinkRetry, WriteClient

if TYPE_CHECKING:
    from collector.config import InfluxConfig

__all__ = ["InfluxSink", "RejectedPoint", "SinkRetry", "line_protocol"]

log = logging.getLogger(__name__)
_AUTH_LOG_EVERY_S = 60.0
_MAX_SETTLED = 10_000
_RETENTION_CLASS = attrgetter("retention_class")


@dataclass(frozen=True)
class RejectedPoint:
    """A record the server refused (400/422, or 413 alone), with the server's reason."""

    record: TelemetryRecord
    reason: str


OnRejected = Callable[[Sequence[RejectedPoint]], None]


class InfluxSink:
    name = "influx"

    def __init__(
        self,
        url: str,
        org: str,
        token: str,
        classes: Sequence[str],
        bucket_prefix: str = "hookflash-",
        timeout_s: float = 10.0,
        *,
        buckets: dict[str, str] | None = None,
        batch_lines: int = 5000,
        gzip_level: int = 1,
        on_rejected: OnRejected | None = None,
        server: str = "influxdb",
        erasure: str = "delete",
    ) -> None:
        self._server, self._erasure = server, erasure
        # Why this sink erases nothing itself (by configuration), or None: it does.
        self.not_erased_reason = (
            f"not erased by hookflash: {self.name}'s own retention bounds the data (influx.erasure)"
            if erasure == "server_retention"
            else None
        )
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout_s * 1000))
        self._http = WriteClient(self._client, url, org, token, timeout_s, gzip_level)
        self._org = org
        self._token = token
        self._prefix = bucket_prefix
        self._buckets = {name: (buckets or {}).get(name) or f"{bucket_prefix}{name}" for name in classes}
        self._batch_lines = max(1, batch_lines)
        self._on_rejected = on_rejected
        self._encoder = LineEncoder()
        # Posts settled (written: None, or refused and reported) by a write that then failed
        # part way: its retry skips them, so points are neither written nor reported twice.
        self._settled: dict[int, Refused | None] = {}
        self._refused_now = 0  # points refused in the current write
        self._posted_now: list[tuple[str, bytes]] = []  # posts the current write made
        self._auth_logged_at = -_AUTH_LOG_EVERY_S
        self.written = 0  # points the server accepted
        self.rejected = 0  # points refused (400/422/413) and reported
        self.auth_failures = 0  # posts refused with 401/403/404

    @classmethod
    def from_config(
        cls, config: InfluxConfig, classes: Sequence[str], on_rejected: OnRejected | None = None
    ) -> InfluxSink:
        return cls(
            config.url,
            config.org,
            config.token(),
            classes,
            config.bucket_prefix,
            config.timeout_s,
            buckets=config.bucket_names(classes),
            batch_lines=config.batch_lines,
            gzip_level=config.gzip_level,
            on_rejected=on_rejected,
            server=config.server,
            erasure=config.erasure,
        )

    @property
    def posts(self) -> int:
        """HTTP write requests made."""
        return self._http.posts

    def bucket(self, retention_class: str) -> str:
        return self._buckets.get(retention_class) or f"{self._prefix}{retention_class}"

    def healthy(self) -> bool:
        """The server answers /ping (InfluxDB and VictoriaMetrics both do)."""
        try:
            return bool(self._client.ping())
        except Exception:
            return False

    # -- writing ---------------------------------------------------------------------------

    def write(self, records: Sequence[TelemetryRecord]) -> int:
        """Write every record to its class's bucket; return how many the server accepted.
        Raises SinkRetry when the batch must be retried (what was written is not resent)."""
        self._refused_now = 0
        self._posted_now.clear()
        step = self._batch_lines
        try:
            for bucket, group in self._by_bucket(records):
                for start in range(0, len(group), step):
                    self._deliver(bucket, group[start : start + step])
        except SinkRetry as exc:
            for bucket, body in self._posted_now:  # the retry of this batch skips them
                self._settle(hash((bucket, body)), None)
            if exc.status in (401, 403, 404):
                self._auth_failed(exc)
            raise SinkRetry(f"{self.name}: {exc}", exc.retry_after_s, exc.status) from None
        finally:
            self._posted_now.clear()
        self._settled.clear()
        return len(records) - self._refused_now

    def _by_bucket(self, records: Sequence[TelemetryRecord]) -> list[tuple[str, Sequence[TelemetryRecord]]]:
        classes = list(map(_RETENTION_CLASS, records))
        if not classes:
            return []
        if classes.count(classes[0]) == len(classes):  # the usual batch: one class
            return [(self.bucket(classes[0]), records)]
        groups: dict[str, list[TelemetryRecord]] = {}
        for retention_class, record in zip(classes, records, strict=True):
            group = groups.get(retention_class)
            if group is None:
                group = groups[retention_class] = []
            group.append(record)
        return [(self.bucket(name), group) for name, group in groups.items()]

    def _deliver(
        self, bucket: str, records: Sequence[TelemetryRecord], lines: list[str] | None = None
    ) -> None:
        """One post of the records (whose lines are known when a refused post is split); the
        body is built straight from the records, and lines only for a post refused."""
        body = self._encoder.body(records) if lines is None else join_lines(lines)
        try:
            self._post(bucket, body, len(records))
        except Refused as refused:
            self._handle(bucket, lines or self._encoder.lines(records), records, refused)

    def _handle(
        self, bucket: str, lines: list[str], records: Sequence[TelemetryRecord], refused: Refused
    ) -> None:
        if refused.status == 413 and len(lines) > 1:
            half = len(lines) // 2
            self._deliver(bucket, records[:half], lines[:half])
            self._deliver(bucket, records[half:], lines[half:])
        elif refused.status == 413:
            too_large = Refused(413, f"larger than the server accepts: {refused.reason}")
            self._reject(bucket, lines, records, too_large)
        else:
            self._isolate(bucket, lines, records, refused)

    def _isolate(
        self, bucket: str, lines: list[str], records: Sequence[TelemetryRecord], refused: Refused
    ) -> None:
        """Bisect a refused post, breadth first, until each refused piece is one line; the
        good pieces are written on the way. The number of extra posts is bounded
        (`isolation_budget`): once it is spent, the pieces still refused are rejected whole,
        so a post of only bad lines costs about a hundred requests, not thousands."""
        budget = isolation_budget(len(lines))
        pending = [(0, len(lines), refused)]
        while pending:
            lo, hi, why = pending.pop(0)
            if hi - lo == 1 or budget < 2:
                if hi - lo > 1:
                    why = Refused(why.status, f"{why.reason} (refused with {hi - lo - 1} other line(s))")
                self._reject(bucket, lines[lo:hi], records[lo:hi], why)
                continue
            mid = (lo + hi) // 2
            for a, b in ((lo, mid), (mid, hi)):
                budget -= 1
                try:
                    self._post(bucket, join_lines(lines[a:b]), b - a)
                except Refused as piece:
                    if piece.status == 413:
                        self._deliver(bucket, records[a:b], lines[a:b])
                    else:
                        pending.append((a, b, piece))

    def _reject(
        self, bucket: str, lines: list[str], records: Sequence[TelemetryRecord], refused: Refused
    ) -> None:
        self._refused_now += len(records)
        key = hash((bucket, join_lines(lines)))
        if self._settled.get(key) is not None:
            return  # reported before this batch was retried
        reason = f"HTTP {refused.status}: {refused.reason}"
        log.warning("%s: %d point(s) refused by the server for %s: %s", self.name, len(lines), bucket, reason)
        if self._on_rejected is not None:
            self._on_rejected([RejectedPoint(record, reason) for record in records])
        self.rejected += len(records)
        self._settle(key, refused)

    def _post(self, bucket: str, body: bytes, points: int) -> None:
        """One post, unless settled by a previous try of this batch."""
        if self._settled:  # only after a write that failed part way
            key = hash((bucket, body))
            if key in self._settled:
                settled = self._settled[key]
                if settled is None:
                    return
                raise Refused(settled.status, settled.reason)
        self._http.post(bucket, body)
        self.written += points
        self._posted_now.append((bucket, body))

    def _settle(self, key: int, refused: Refused | None) -> None:
        if len(self._settled) >= _MAX_SETTLED:  # only a run of failing writes gets here
            self._settled.clear()
        self._settled[key] = refused

    def _auth_failed(self, exc: SinkRetry) -> None:
        self.auth_failures += 1
        now = time.monotonic()
        if now - self._auth_logged_at >= _AUTH_LOG_EVERY_S:  # loud, but once a minute at most
            self._auth_logged_at = now
            log.error(
                "%s: %s (%d such failures so far; check the token, the org and "
                "`hookflash influx ensure-buckets`)",
                self.name,
                exc,
                self.auth_failures,
            )

    # -- erasure: InfluxDB's delete API by predicate, VictoriaMetrics' delete_series -----------

    def _delete(self, bucket: str, start: datetime, predicate: str) -> None:
        try:
            self._client.delete_api().delete(start, _END_OF_TIME, predicate, bucket=bucket, org=self._org)
        except ApiException as exc:
            reason = server_message(exc.body or exc.reason, self._token)
            if exc.status == 400 and "unsupported path" in reason:
                reason += ' (VictoriaMetrics? then set influx.server = "victoriametrics")'
            raise SinkRetry(f"{self.name}: delete in {bucket} failed: HTTP {exc.status}: {reason}") from None
        except CONNECTION_ERRORS as exc:
            raise SinkRetry(f"{self.name}: cannot reach the server: {type(exc).__name__}") from None

    def erase_account(
        self, account_id: str, classes: Sequence[RetentionClass], aggregate_text: Anonymization
    ) -> dict[str, int]:
        """Delete the account's points in each class's bucket (InfluxDB), or every series
        labelled with the account (VictoriaMetrics, all buckets at once). Anonymized
        aggregates live in the embedded store, so here anonymize means delete too. Neither
        API reports counts: -1 says "deleted, count unknown". Raises SinkRetry when the
        server did not confirm, NotErasedHere when its own retention is configured to bound
        the data."""
        self._erasable()
        if self._server == "victoriametrics":
            self._http.delete_series(selector(account_id=account_id))
        else:
            for cls in classes:
                self._delete(self.bucket(cls.name), _START_OF_TIME, predicate(account_id=account_id))
        return {cls.name: -1 for cls in classes}

    def purge_since(self, account_id: str, since: datetime, device_id: str | None = None) -> int:
        """Points observed since a stop (in flight when it happened). VictoriaMetrics deletes
        whole series, not time ranges, so there nothing is purged: the points reach it
        through the spool, which drops them first (runtime/spooled.py), and the account's
        erasure deletes its series."""
        if self._erasure != "delete" or self._server == "victoriametrics":
            return 0
        for bucket in self._buckets.values():
            self._delete(bucket, since, predicate(account_id=account_id, device_id=device_id))
        return 0

    def _erasable(self) -> None:
        if self.not_erased_reason is not None:
            raise NotErasedHere(self.not_erased_reason)

    def last_seen(self, account_id: str) -> dict[str, datetime]:
        return {}  # the embedded store, always configured, answers this

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]


def selector(*, account_id: str, device_id: str | None = None) -> str:
    """A series selector on the labels (values quoted, `"` and `\\` escaped)."""

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    labels = [f"account_id={quoted(account_id)}"] + ([f"device_id={quoted(device_id)}"] if device_id else [])
    return "{" + ",".join(labels) + "}"


def predicate(*, account_id: str, device_id: str | None = None) -> str:
    """A delete predicate on the tags (values quoted, `"` and `\\` escaped)."""

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    text = f"account_id={quoted(account_id)}"
    return text + (f" AND device_id={quoted(device_id)}" if device_id else "")


_START_OF_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_END_OF_TIME = datetime(2100, 1, 1, tzinfo=UTC)
