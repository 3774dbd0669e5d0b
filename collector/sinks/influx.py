"""InfluxDB v2 sink (influxdb-client): one bucket per retention class, device/account/model/
firmware as tags, telemetry as fields, gzip'ed line-protocol batches.

Any server speaking the InfluxDB v2 write API receives the numeric series (VictoriaMetrics
does; it keeps text fields as 0). Status handling, per the write API:
- 413: the batch is split in halves and retried;
- 400 / 422: the batch's points are rejected as a whole and reported (logged with the
  server's reason), so one bad point cannot block the sink forever;
- 401 / 403: the batch is kept and an error raised (the pipeline retries, loudly);
- 429 / 5xx and connection errors: raised with the server's Retry-After, so the pipeline
  retries with backoff.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from collector.records import FieldValue, TelemetryRecord
from collector.retention import RetentionClass

log = logging.getLogger(__name__)
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})


def _field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def line_protocol(record: TelemetryRecord) -> str:
    """One point: measurement = kind; tags sorted by key (what the server stores anyway)."""
    tags = {"account_id": record.account_id, "device_id": record.device_id, "model": record.model}
    if record.firmware:
        tags["firmware"] = record.firmware
    tag_text = ",".join(f"{k}={v.translate(_TAG_ESCAPES)}" for k, v in sorted(tags.items()) if v)
    fields = ",".join(f"{k}={_field(v)}" for k, v in record.fields.items())
    stamp = int(record.observed_at.timestamp() * 1_000_000_000)
    return f"{record.kind.value.translate(_MEASUREMENT_ESCAPES)},{tag_text} {fields} {stamp}"


class SinkRetry(Exception):
    """Temporary failure (429, 5xx, connection); `retry_after_s` when the server said."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


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
    ) -> None:
        self._client = InfluxDBClient(
            url=url, token=token, org=org, enable_gzip=True, timeout=int(timeout_s * 1000)
        )
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._org = org
        self._prefix = bucket_prefix
        self._buckets = [self.bucket(name) for name in classes]
        self.rejected = 0

    def bucket(self, retention_class: str) -> str:
        return f"{self._prefix}{retention_class}"

    def write(self, records: Sequence[TelemetryRecord]) -> int:
        by_bucket: dict[str, list[str]] = defaultdict(list)
        for record in records:
            by_bucket[self.bucket(record.retention_class)].append(line_protocol(record))
        for bucket, lines in by_bucket.items():
            self._post(bucket, lines)
        return len(records)

    def _post(self, bucket: str, lines: list[str]) -> None:
        try:
            self._write.write(bucket=bucket, org=self._org, record=lines)
        except ApiException as exc:
            status = int(exc.status or 0)
            if status == 413 and len(lines) > 1:
                half = len(lines) // 2
                self._post(bucket, lines[:half])
                self._post(bucket, lines[half:])
            elif status in (400, 422):
                self.rejected += len(lines)
                log.error(
                    "%s rejected %d points for bucket %s: %s",
                    self.name,
                    len(lines),
                    bucket,
                    str(exc.body or exc.reason or "")[:300],
                )
            elif status in (401, 403):
                raise SinkRetry(
                    f"{self.name}: not authorized to write to bucket {bucket} (HTTP {status}); "
                    "check the token"
                ) from None
            else:
                headers: Any = exc.headers or {}
                retry_after = str(headers.get("Retry-After") or "")
                raise SinkRetry(
                    f"{self.name}: HTTP {status} writing to {bucket}",
                    float(retry_after) if retry_after.isdigit() else None,
                ) from None
        except OSError as exc:
            raise SinkRetry(f"{self.name}: cannot reach the server: {type(exc).__name__}") from None

    # -- erasure by predicate (InfluxDB's delete API; VictoriaMetrics does not implement it) ----

    def _delete(self, bucket: str, start: datetime, predicate: str) -> None:
        try:
            self._client.delete_api().delete(start, _END_OF_TIME, predicate, bucket=bucket, org=self._org)
        except ApiException as exc:
            raise SinkRetry(f"{self.name}: delete in {bucket} failed: HTTP {exc.status}") from None
        except OSError as exc:
            raise SinkRetry(f"{self.name}: cannot reach the server: {type(exc).__name__}") from None

    def erase_account(
        self, account_id: str, classes: Sequence[RetentionClass], aggregate_text: frozenset[str]
    ) -> dict[str, int]:
        """Delete the account's points in each class's bucket. Anonymized aggregates live in the
        embedded store, so here anonymize means delete too. The delete API reports no counts:
        -1 says "deleted, count unknown"."""
        for cls in classes:
            self._delete(self.bucket(cls.name), _START_OF_TIME, f'account_id="{account_id}"')
        return {cls.name: -1 for cls in classes}

    def purge_since(self, account_id: str, since: datetime, device_id: str | None = None) -> int:
        predicate = f'account_id="{account_id}"' + (f' AND device_id="{device_id}"' if device_id else "")
        for bucket in self._buckets:
            self._delete(bucket, since, predicate)
        return 0

    def last_seen(self, account_id: str) -> dict[str, datetime]:
        return {}  # the embedded store, always configured, answers this

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]


_START_OF_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_END_OF_TIME = datetime(2100, 1, 1, tzinfo=UTC)
