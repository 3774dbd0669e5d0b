"""A remote sink behind its own disk spool and worker thread, so it never blocks the others.

`write` only appends the batch to the spool (and so returns in milliseconds whether the
server is up, slow or gone); the worker sends the oldest spooled batches, merged up to
`batch_records`, and forgets them once the server has taken them. A failed send is retried
with capped exponential backoff (or the server's Retry-After), in order, forever: nothing is
skipped. When the spool reaches its bound, new batches for this sink are refused and
counted, with an error in the log; the embedded store, written first, still has them.

Erasure runs on the worker thread, between sends, and first removes the account's records
from the spool: nothing of an erased account is sent after its erasure. Records of a
device or account erased while they waited (even while hookflash was stopped and another
process carried out the revocation) are dropped at send time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from collector.core.backoff import Backoff
from collector.core.errors import SinkError
from collector.core.interfaces import Sink, SinkHealth
from collector.core.records import Anonymization, RetentionClass, TelemetryRecord
from collector.core.stats import Stats
from collector.runtime.spool import Spool

log = logging.getLogger(__name__)
T = TypeVar("T")
_REPORT_EVERY_S = 60.0


class SpooledSink:
    def __init__(
        self,
        inner: Sink,
        directory: Path,
        stats: Stats,
        *,
        max_bytes: int,
        batch_records: int = 5000,
        max_backoff_s: float = 30.0,
        erased: Callable[[TelemetryRecord], bool] = lambda _record: False,
    ) -> None:
        """`erased(record)`: true when the record's device or account has been erased since
        it was spooled; it is then dropped instead of sent."""
        self.inner = inner
        self._erased = erased
        self.name = inner.name
        self.not_erased_reason: str | None = getattr(inner, "not_erased_reason", None)
        self._spool = Spool(directory, max_bytes)
        self._stats = stats
        self._batch_records = batch_records
        self._max_backoff = max_backoff_s
        self._jobs: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._flush_deadline = 0.0
        self.refused = 0  # records refused because the spool was full
        self.down_since: float | None = None
        self._last_failure: tuple[int | None, str] = (None, "")
        self._last_full_report = 0.0
        self._last_down_report = 0.0
        if self._spool.batches:
            log.info(
                "%s: %d spooled batches (%d bytes) from an earlier run will be sent first",
                self.name,
                self._spool.batches,
                self._spool.bytes,
            )
        self._thread = threading.Thread(target=self._run, name=f"sink-{self.name}", daemon=True)

    def start(self) -> None:
        """Start sending (what an earlier run left in the spool first)."""
        self._thread.start()

    # -- what /metrics and the tests read ------------------------------------------------------

    @property
    def spool_bytes(self) -> int:
        return self._spool.bytes

    @property
    def spool_batches(self) -> int:
        return self._spool.batches

    def health(self) -> SinkHealth:
        down_since = self.down_since
        status, reason = self._last_failure if down_since is not None else (None, "")
        return SinkHealth(
            self.name,
            None if down_since is None else time.monotonic() - down_since,
            status,
            reason,
            self._spool.batches,
            self._spool.bytes,
        )

    # -- the Sink interface ----------------------------------------------------------------------

    def write(self, records: Sequence[TelemetryRecord]) -> int:
        if self._spool.append(records):
            with self._wake:
                self._wake.notify()
            return len(records)
        self.refused += len(records)
        self._stats.spool_refused[self.name] += len(records)
        now = time.monotonic()
        if now - self._last_full_report >= _REPORT_EVERY_S:
            self._last_full_report = now
            log.error(
                "%s: SPOOL FULL (%d bytes, bound %d): refusing new records for this sink "
                "(%d so far); they are kept only in the embedded store. Raise spool.max_mb "
                "or bring the server back",
                self.name,
                self._spool.bytes,
                self._spool.max_bytes,
                self.refused,
            )
        return 0

    def erase_account(
        self, account_id: str, classes: Sequence[RetentionClass], aggregate_text: Anonymization
    ) -> dict[str, int]:
        def erase() -> dict[str, int]:
            self._spool.drop(lambda r: r.account_id == account_id)
            return self.inner.erase_account(account_id, classes, aggregate_text)

        return self._call(erase)

    def purge_since(self, account_id: str, since: datetime, device_id: str | None = None) -> int:
        def purge() -> int:
            dropped = self._spool.drop(
                lambda r: r.account_id == account_id
                and (device_id is None or r.device_id == device_id)
                and r.observed_at >= since
            )
            return dropped + self.inner.purge_since(account_id, since, device_id)

        return self._call(purge)

    def last_seen(self, account_id: str) -> dict[str, datetime]:
        return self.inner.last_seen(account_id)

    def close(self, grace_s: float = 5.0) -> None:
        """Give the worker `grace_s` to send what is spooled; the rest waits on disk for the
        next start."""
        with self._wake:
            self._stopping = True
            self._flush_deadline = time.monotonic() + grace_s
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(grace_s + 15.0)
        if self._spool.batches:
            log.warning(
                "%s: %d batches (%d bytes) stay spooled; they are sent when hookflash starts again",
                self.name,
                self._spool.batches,
                self._spool.bytes,
            )
        self._spool.close()
        self.inner.close()

    # -- the worker thread -------------------------------------------------------------------------

    def _call(self, job: Callable[[], T]) -> T:
        """Run `job` on the worker thread, between two sends, and wait for its result."""
        if not self._thread.is_alive():  # closed: nothing can be sending any more
            return job()
        done: Future[T] = Future()
        with self._wake:
            self._jobs.append((job, done))
            self._wake.notify()
        return done.result()

    def _run_jobs(self) -> None:
        while self._jobs:
            job, done = self._jobs.popleft()
            try:
                done.set_result(job())
            except BaseException as exc:  # handed to the caller, who reports it
                done.set_exception(exc)

    def _wait(self, seconds: float) -> None:
        """Sleep, but wake for a job, new data or a stop."""
        with self._wake:
            if not self._jobs:
                self._wake.wait(seconds)

    def _run(self) -> None:
        backoff = Backoff(first_s=0.5, cap_s=self._max_backoff)
        while True:
            self._run_jobs()
            if self._stopping and (not self._spool.batches or time.monotonic() > self._flush_deadline):
                self._run_jobs()
                return
            taken = self._spool.peek(self._batch_records)
            if taken is None:
                self._wait(1.0)
                continue
            spooled, position, batches = taken
            records = [r for r in spooled if not self._erased(r)]
            started = time.perf_counter()
            try:
                if records:
                    self.inner.write(records)
            except Exception as exc:
                self._stats.sink_errors += 1
                delay = backoff.next()
                asked = exc.retry_after_s if isinstance(exc, SinkError) else None
                wait = min(asked, 300.0) if asked is not None and asked > 0 else delay
                self._report_failure(exc, len(records), wait)
                if self._stopping and time.monotonic() + wait > self._flush_deadline:
                    self._run_jobs()
                    return  # no time left to wait: the spool keeps it all for the next start
                self._wait(wait)
                continue
            elapsed = time.perf_counter() - started
            self._spool.commit(position, batches)
            if records:
                self._stats.sink_wrote(self.name, Counter(r.retention_class for r in records), elapsed)
            if self.down_since is not None:
                log.warning(
                    "%s is back after %.0fs; %d spooled batches left to send",
                    self.name,
                    time.monotonic() - self.down_since,
                    self._spool.batches,
                )
                self.down_since = None
            backoff.reset()

    def _report_failure(self, exc: Exception, count: int, wait: float) -> None:
        status = exc.status if isinstance(exc, SinkError) else None
        self._last_failure = (status, str(exc))
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = self._last_down_report = now
            log.error("%s failed to write %d records (%s); spooling and retrying", self.name, count, exc)
        elif now - self._last_down_report >= _REPORT_EVERY_S:
            self._last_down_report = now
            log.error(
                "%s down for %.0fs (%s); %d batches (%d bytes) spooled, next try in %.1fs",
                self.name,
                now - self.down_since,
                exc,
                self._spool.batches,
                self._spool.bytes,
                wait,
            )
