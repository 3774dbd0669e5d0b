"""HTTP posts to the InfluxDB v2 write API, and what their answers mean.

Posts go through the influxdb-client's own connection pool (its TLS settings, proxy and
pool size apply), gzip'ed by hookflash; the token goes only into the Authorization header.
A server may answer before reading the body (401, 413) and hang up: urllib3 still reads
that answer, so it is handled like any other.
"""

from __future__ import annotations

import gzip
import urllib.parse
from typing import Any

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient

from collector.core.errors import HookflashError, SinkError
from collector.sinks.influx.status import retry_after_s, server_message

CONNECTION_ERRORS = (OSError, urllib3.exceptions.HTTPError)


class SinkRetry(SinkError):
    """The batch was not (fully) written and is to be retried: 401/403/404, 429, 5xx or a
    connection error. `retry_after_s` when the server said; `status` the HTTP status (None
    for a connection error)."""

    def __init__(self, message: str, retry_after_s: float | None = None, status: int | None = None) -> None:
        super().__init__(message, status, retry_after_s)


class Refused(HookflashError):
    """A post answered 400, 413 or 422: the sink splits the post (never raised beyond it)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason


class WriteClient:
    def __init__(
        self, client: InfluxDBClient, url: str, org: str, token: str, timeout_s: float, gzip_level: int
    ) -> None:
        self._pool: urllib3.PoolManager = client.api_client.rest_client.pool_manager
        self._token = token
        self._gzip_level = gzip_level
        self._timeout = urllib3.Timeout(total=timeout_s)
        self._root = url.rstrip("/")
        self._base = self._root + "/api/v2/write?"
        self._org = org
        self._headers = {
            "Authorization": f"Token {token}",
            "Content-Type": "text/plain; charset=utf-8",
            "Accept": "application/json",
            "User-Agent": str(client.api_client.user_agent),
        }
        if gzip_level:
            self._headers["Content-Encoding"] = "gzip"
        self.posts = 0

    def post(self, bucket: str, body: bytes) -> None:
        """One post of line-protocol text (UTF-8). Raises Refused (400/413/422) or SinkRetry."""
        self._send(bucket, gzip.compress(body, self._gzip_level) if self._gzip_level else body)

    def _send(self, bucket: str, body: bytes) -> None:
        query = urllib.parse.urlencode({"org": self._org, "bucket": bucket, "precision": "ns"})
        self.posts += 1
        try:
            response = self._pool.urlopen(
                "POST",
                self._base + query,
                body=body,
                headers=self._headers,
                retries=False,
                timeout=self._timeout,
                preload_content=True,
            )
        except CONNECTION_ERRORS as exc:
            raise SinkRetry(f"cannot reach the server: {type(exc).__name__}") from None
        if not 200 <= response.status < 300:
            raise self._failure(bucket, response.status, response.headers, response.data)

    def delete_series(self, selector: str) -> None:
        """VictoriaMetrics: delete every series the selector matches, all of its samples
        (`/api/v1/admin/tsdb/delete_series`). Raises SinkRetry when not confirmed (2xx)."""
        body = urllib.parse.urlencode({"match[]": selector}).encode()
        headers = {**self._headers, "Content-Type": "application/x-www-form-urlencoded"}
        headers.pop("Content-Encoding", None)
        try:
            # Samples VictoriaMetrics took but still buffers are not yet in its index, and
            # delete_series would miss them: flush them first (single-node VictoriaMetrics).
            self._pool.urlopen(
                "GET",
                self._root + "/internal/force_flush",
                headers=headers,
                retries=False,
                timeout=self._timeout,
            )
            response = self._pool.urlopen(
                "POST", self._root + "/api/v1/admin/tsdb/delete_series", body=body, headers=headers,
                retries=False, timeout=self._timeout, preload_content=True,
            )  # fmt: skip
        except CONNECTION_ERRORS as exc:
            raise SinkRetry(f"cannot reach the server: {type(exc).__name__}") from None
        if not 200 <= response.status < 300:
            reason = server_message(response.data, self._token)
            raise SinkRetry(f"delete_series failed: HTTP {response.status}: {reason}", status=response.status)

    def _failure(self, bucket: str, status: int, headers: Any, data: bytes) -> Exception:
        reason = server_message(data, self._token)
        if status in (400, 413, 422):
            return Refused(status, reason)
        said = f": {reason}" if reason else " (the server gave no reason)"
        if status in (401, 403, 404):
            what = "not authorized to write to" if status != 404 else "no such bucket or org for"
            message = f"{what} bucket {bucket} (HTTP {status}); the batch is kept{said}"
            return SinkRetry(message, status=status)
        return SinkRetry(
            f"HTTP {status} writing to {bucket}{said}", retry_after_s(headers.get("Retry-After")), status
        )
