"""HTTP posts to the InfluxDB v2 write API, and what their answers mean.

A post goes out either buffered (the body built, then sent with a Content-Length) or
streamed: line protocol is encoded slice by slice while earlier slices are already on the
wire (chunked transfer encoding), so building lines overlaps with the network and the
server's parsing instead of preceding them. VictoriaMetrics parses a stream as it arrives;
InfluxDB reads it whole, so there the overlap is with the transfer only.

Posts use the influxdb-client's own connection pool, so its TLS settings, proxy and pool
apply; the token goes only into the Authorization header.
"""

from __future__ import annotations

import gzip
import urllib.parse
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient

from collector.sinks.influx_status import retry_after_s, server_message

CONNECTION_ERRORS = (OSError, urllib3.exceptions.HTTPError)


class SinkRetry(Exception):
    """The batch was not (fully) written and is to be retried: 401/403/404, 429, 5xx or a
    connection error. `retry_after_s` when the server said; `status` the HTTP status (None
    for a connection error)."""

    def __init__(self, message: str, retry_after_s: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.status = status


class Refused(Exception):
    """A post answered 400, 413 or 422: the caller splits the post."""

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
        self._base = url.rstrip("/") + "/api/v2/write?"
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

    def post(self, bucket: str, lines: list[str]) -> None:
        """One buffered post. Raises Refused (400/413/422) or SinkRetry."""
        body = "\n".join(lines).encode()
        self._send(bucket, gzip.compress(body, self._gzip_level) if self._gzip_level else body, False)

    def post_streamed(self, bucket: str, slices: Iterable[list[str]]) -> None:
        """One post whose lines come slice by slice (encoded by the caller as they are needed).
        `slices` is always consumed to its end, so the caller has every line whatever the
        outcome. If the connection breaks part way (a server may answer early and close:
        401, 413), the post is repeated once, buffered, to learn the answer."""
        parts = iter(slices)
        sent: list[str] = []
        started = False

        def body() -> Iterator[bytes]:
            nonlocal started
            packer = zlib.compressobj(self._gzip_level, zlib.DEFLATED, 31) if self._gzip_level else None
            for part in parts:
                sent.extend(part)
                data = ("\n".join(part) + "\n").encode()
                data = packer.compress(data) if packer else data
                if data:
                    started = True
                    yield data
            if packer:
                yield packer.flush()

        try:
            self._send(bucket, body(), True)
        except SinkRetry as exc:
            for part in parts:
                sent.extend(part)
            if exc.status is not None or not started:
                raise
            self.post(bucket, sent)
        finally:
            for part in parts:  # the server answered before reading everything
                sent.extend(part)

    def _send(self, bucket: str, body: bytes | Iterator[bytes], streamed: bool) -> None:
        query = urllib.parse.urlencode({"org": self._org, "bucket": bucket, "precision": "ns"})
        self.posts += 1
        try:
            response = self._pool.urlopen(
                "POST",
                self._base + query,
                body=body,
                headers=self._headers,
                chunked=streamed,
                retries=False,
                timeout=self._timeout,
                preload_content=True,
            )
        except CONNECTION_ERRORS as exc:
            raise SinkRetry(f"cannot reach the server: {type(exc).__name__}") from None
        if not 200 <= response.status < 300:
            raise self._failure(bucket, response.status, response.headers, response.data)

    def _failure(self, bucket: str, status: int, headers: Any, data: bytes) -> Exception:
        reason = server_message(data, self._token)
        if status in (400, 413, 422):
            return Refused(status, reason)
        if status in (401, 403, 404):
            what = "not authorized to write to" if status != 404 else "no such bucket or org for"
            message = f"{what} bucket {bucket} (HTTP {status}); the batch is kept: {reason}"
            return SinkRetry(message, status=status)
        return SinkRetry(
            f"HTTP {status} writing to {bucket}: {reason}", retry_after_s(headers.get("Retry-After")), status
        )
