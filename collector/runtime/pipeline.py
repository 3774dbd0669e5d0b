"""The backlog between the intake and the sinks, and the one writer that drains it.

The intake puts tagged records (and quarantine entries) here; one task takes them in
batches and writes them to every sink. Sinks are blocking (sqlite3, a spool's append), so
the writer hands batches to a dedicated single thread: writes stay ordered, the event loop
never blocks on disk, and erasure jobs scheduled with `run_in_writer` are serialized with
writes. Right before each write the gate is asked again, at the last moment (P4: records
in flight when an account stopped are dropped, not written).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from collector.core.backoff import Backoff
from collector.core.interfaces import Sink
from collector.core.records import Ack, QuarantineEntry, TelemetryRecord
from collector.core.stats import Stats
from collector.gate import Gate
from collector.runtime.spooled import SpooledSink
from collector.sinks.sqlite import QuarantineStore

log = logging.getLogger(__name__)
T = TypeVar("T")
_HEADROOM = 1000  # records: more than a burst of MQTT messages can make
Item = tuple[TelemetryRecord | QuarantineEntry, Ack | None]


class _Backlog:
    """What waits for the writer: a bounded FIFO that is cheap per item (a deque; the writer
    is woken by an event and takes whole batches), with join() for a flush at stop."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[Item] = deque()
        self._nonempty = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()
        self._unsettled = 0
        self._puts = 0  # items ever put: whether any arrived while the writer lingered

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Item) -> bool:
        if len(self._items) >= self.maxsize:
            return False
        self._items.append(item)
        self._puts += 1
        self._unsettled += 1
        self._settled.clear()
        self._nonempty.set()
        return True

    async def wait(self) -> None:
        while not self._items:
            self._nonempty.clear()
            await self._nonempty.wait()

    async def linger(self, size: int, timeout: float, idle: float = 0.01) -> None:
        """Wait, at most `timeout`, for `size` items, as long as more keep arriving: stop as
        soon as none came for `idle` seconds. Under light load records are still written
        in batches; when the source waits for its acknowledgements (QoS 1 flow control)
        the writer does not sit out the whole timeout while nothing more can come."""
        deadline = time.monotonic() + timeout
        while len(self._items) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            before = self._puts
            await asyncio.sleep(min(idle, remaining))
            if self._puts == before:
                return

    def take(self, limit: int) -> list[Item]:
        items = self._items
        return [items.popleft() for _ in range(min(limit, len(items)))]

    def settled(self, count: int) -> None:
        self._unsettled -= count
        if self._unsettled == 0:
            self._settled.set()

    async def join(self) -> None:
        await self._settled.wait()


class LogBudget:
    """At most `per_minute` lines a minute of one kind: a flood of hostile payloads must
    not become a flood of log lines (each is still counted and quarantined); what was
    left out is summed up in one line when the next minute begins."""

    def __init__(self, what: str, per_minute: int) -> None:
        self._what, self._per_minute = what, per_minute
        self._window = 0.0
        self._used = 0
        self._skipped = 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self._window >= 60.0:
            if self._skipped:
                log.warning("%d more %s entries were not logged in a minute", self._skipped, self._what)
            self._window, self._used, self._skipped = now, 0, 0
        if self._used < self._per_minute:
            self._used += 1
            return True
        self._skipped += 1
        return False


def _countdown(n: int, done: Ack) -> Ack:
    """A callback to give each of n records: `done` runs when the last one has been called."""
    left = [n]

    def one() -> None:
        left[0] -= 1
        if left[0] == 0:
            done()

    return one


class Pipeline:
    def __init__(
        self,
        gate: Gate,
        sinks: Sequence[Sink],
        quarantine_store: QuarantineStore,
        stats: Stats,
        *,
        # Records per write. The writer thread waits for the interpreter lock after each
        # SQLite call (up to the 5 ms switch interval while the loop is busy): with 500-record
        # batches those waits, not SQLite, capped the store at ~18,000 records/s; 5,000 take
        # ~32,000/s (bench/mqtt_ingest.py). Under light load the writer does not wait for a
        # full batch (`_Backlog.linger`), so this bounds a busy writer's batch, not latency.
        batch_size: int = 5000,
        flush_interval: float = 0.2,
        queue_size: int = 50_000,
    ) -> None:
        self.gate = gate
        self.sinks = list(sinks)
        self._quarantine_store = quarantine_store
        self.stats = stats
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._queue = _Backlog(queue_size)
        self._room_waiters: list[Callable[[], None]] = []
        self._quarantine_log = LogBudget("quarantined", per_minute=60)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hookflash-writer")
        self._task: asyncio.Task[None] | None = None

    # -- called by the intake, on the event loop ----------------------------------------------

    def has_room(self, records: int) -> bool:
        return self._queue.maxsize - len(self._queue) >= records

    def put(self, records: list[TelemetryRecord], done: Ack | None = None) -> None:
        """Queue records (the intake checked there is room). `done` is called once all of
        them are settled: written by every sink, or dropped by the gate in flight."""
        if len(records) == 1:
            self._put(records[0], done)
            return
        each = _countdown(len(records), done) if done is not None else None
        for record in records:
            self._put(record, each)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def queue_capacity(self) -> int:
        return self._queue.maxsize

    @property
    def nearly_full(self) -> bool:
        """Time for a source that can wait (MQTT) to stop reading until `when_room`."""
        return self._queue.maxsize - len(self._queue) < _HEADROOM

    def when_room(self, callback: Callable[[], None]) -> None:
        """Call `callback` once, on the loop, when the backlog is down to half its size."""
        self._room_waiters.append(callback)

    def _notify_room(self) -> None:
        if self._room_waiters and len(self._queue) <= self._queue.maxsize // 2:
            waiters, self._room_waiters = self._room_waiters, []
            for callback in waiters:
                callback()

    @property
    def saturated(self) -> bool:
        """Too full to take a message's records (each makes at most two: record and change)."""
        return self._queue.maxsize - len(self._queue) < 2

    def quarantine(self, entry: QuarantineEntry, done: Ack | None = None) -> bool:
        """Queue a quarantine entry; False (and not settled) when the backlog is full."""
        self.stats.quarantined += 1
        if self._quarantine_log.allow():
            log.warning(
                "quarantined %s message on %s (%d bytes): %s",
                entry.source,
                entry.topic,
                entry.size,
                entry.reason,
            )
        return self._put(entry, done)

    def _put(self, item: TelemetryRecord | QuarantineEntry, done: Ack | None = None) -> bool:
        if self._queue.put((item, done)):
            return True
        self.stats.queue_overflow += 1
        return False

    # -- writer -------------------------------------------------------------------------------

    async def run_in_writer(self, job: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain(), name="pipeline-writer")

    async def stop(self, grace_s: float = 30.0) -> None:
        """Flush what is queued, then stop the writer. A sink that keeps failing gets
        `grace_s`; what it still holds then is reported, loudly, instead of hanging."""
        if self._task is not None:
            try:
                await asyncio.wait_for(self._queue.join(), grace_s)
            except TimeoutError:
                log.error(
                    "stopping with %d records not written: a sink kept failing for %.0fs",
                    len(self._queue),
                    grace_s,
                )
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def _drain(self) -> None:
        while True:
            await self._queue.wait()
            # Light load: wait a moment so records are written in batches, not one by one.
            await self._queue.linger(self._batch_size, self._flush_interval)
            batch = self._queue.take(self._batch_size)
            self._notify_room()
            try:
                await self._write([item for item, _done in batch])
                # Only now is each item settled (written, or dropped by the gate in flight).
                for _item, done in batch:
                    if done is not None:
                        done()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one bad batch end the writer
                log.exception("writing a batch of %d items failed; it was dropped", len(batch))
            finally:
                self._queue.settled(len(batch))

    async def _write(self, batch: list[TelemetryRecord | QuarantineEntry]) -> None:
        records = [r for r in batch if isinstance(r, TelemetryRecord)]
        entries = [q for q in batch if isinstance(q, QuarantineEntry)]
        if entries:
            await self._retry(
                "quarantine", len(entries), functools.partial(self._quarantine_allowed, entries)
            )
        if not records:
            return
        allowed: list[TelemetryRecord] = []
        for sink in self.sinks:
            allowed = await self._retry(
                sink.name, len(records), functools.partial(self._write_allowed, sink, records)
            )
        self.stats.dropped_in_flight += len(records) - len(allowed)
        for record in allowed:
            self.stats.stored_by_kind[record.kind.value] += 1

    async def _retry(self, what: str, count: int, job: Callable[[], T]) -> T:
        """Run a write in the writer thread until it succeeds: a failing store keeps its batch
        (and, with MQTT QoS 1, the broker keeps the unacknowledged messages). Only local
        writes get here (SQLite, a spool's append); a remote server's failures and its
        Retry-After are the spooled sink's worker's business."""
        backoff = Backoff(first_s=0.1, cap_s=5.0)
        while True:
            try:
                return await self.run_in_writer(job)
            except Exception as exc:
                self.stats.sink_errors += 1
                delay = backoff.next()
                log.error("%s failed to write %d items, retrying in %.1fs: %s", what, count, delay, exc)
                await asyncio.sleep(delay)

    def _quarantine_allowed(self, entries: list[QuarantineEntry]) -> None:
        """Like _write_allowed: a quarantined payload of a device whose account stopped is
        dropped at the last moment too."""
        kept = [q for q in entries if q.device_id is None or self.gate.allows(q.device_id)]
        if kept:
            self._quarantine_store.quarantine(kept)

    def _write_allowed(self, sink: Sink, records: list[TelemetryRecord]) -> list[TelemetryRecord]:
        """In the writer thread: re-check the gate at the last moment, then write.

        A stop event flips the gate on the loop and then queues its purge job behind this
        one, so a record either is filtered here or written before the purge removes it.
        """
        allowed = [r for r in records if self.gate.allows(r.device_id)]
        if allowed:
            started = time.perf_counter()
            sink.write(allowed)
            if not isinstance(sink, SpooledSink):  # a spooled sink counts when it has really sent
                elapsed = time.perf_counter() - started
                self.stats.sink_wrote(sink.name, Counter(r.retention_class for r in allowed), elapsed)
        return allowed
