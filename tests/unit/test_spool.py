"""The disk spool in front of remote sinks: ordered, bounded, durable across a restart (and a
torn write), and erasable; and the worker that sends from it, through failures."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.core.records import Kind, TelemetryRecord
from collector.core.stats import Stats
from collector.retention import RetentionClass
from collector.runtime.spool import Spool
from collector.runtime.spooled import SpooledSink
from runner import eventually

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def rec(n: int, account: str = "acct-a") -> TelemetryRecord:
    return TelemetryRecord(
        device_id=f"0000000000{n % 100:02d}",
        account_id=account,
        kind=Kind.SIGNAL,
        observed_at=T0 + timedelta(seconds=n),
        fields={"n": n, "label": f"r{n}"},
        retention_class="operational",
        source="mqtt",
        model="T54W",
        firmware="96.86.0.1",
    )


def numbers(records: Sequence[TelemetryRecord]) -> list[int]:
    return [int(r.fields["n"]) for r in records]


def drain(spool: Spool, max_records: int = 1000) -> list[int]:
    out: list[int] = []
    while (taken := spool.peek(max_records)) is not None:
        records, position, batches = taken
        out += numbers(records)
        spool.commit(position, batches)
    return out


# 0: every batch is read back from the files; 25: the first two in memory, the rest read
# back; 20,000 (the default): all of them in memory.
@pytest.mark.parametrize("memory_records", [0, 25, 20_000])
def test_batches_come_back_in_order_merged_up_to_the_limit(tmp_path: Path, memory_records: int) -> None:
    # small segments: several files
    spool = Spool(tmp_path, max_bytes=10**6, segment_bytes=2000, memory_records=memory_records)
    for start in range(0, 100, 10):
        assert spool.append([rec(n) for n in range(start, start + 10)])
    assert spool.batches == 10 and len(list(tmp_path.glob("*.jsonl"))) > 1
    taken = spool.peek(25)
    assert taken is not None
    records, position, batches = taken
    assert numbers(records) == list(range(20)) and batches == 2  # whole batches only
    assert records[3] == rec(3)  # round trip: equal to the record that went in
    spool.commit(position, batches)
    assert drain(spool, 25) == list(range(20, 100))
    assert spool.batches == 0 and spool.bytes == 0
    assert len([p for p in tmp_path.glob("*.jsonl")]) <= 1  # consumed segments deleted


def test_the_bound_refuses_whole_batches_until_space_is_freed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=3000)
    accepted = 0
    while spool.append([rec(n) for n in range(accepted * 5, accepted * 5 + 5)]):
        accepted += 1
    assert accepted > 0 and spool.bytes <= 3000
    before = spool.bytes
    assert not spool.append([rec(n) for n in range(995, 1000)])  # full: refused, nothing written
    assert spool.batches == accepted and spool.bytes == before
    taken = spool.peek(5)
    assert taken is not None
    spool.commit(taken[1], taken[2])
    assert spool.append([rec(n) for n in range(995, 1000)])


def test_a_reopened_spool_resumes_at_its_cursor_and_cuts_a_torn_write(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**6)
    for n in range(6):
        spool.append([rec(n)])
    taken = spool.peek(2)
    assert taken is not None
    spool.commit(taken[1], taken[2])
    spool.close()
    segment = sorted(tmp_path.glob("*.jsonl"))[-1]
    with segment.open("ab") as f:
        f.write(b'[["0000000000ff","acct-a","signal"')  # killed in the middle of a write
    reopened = Spool(tmp_path, max_bytes=10**6)
    assert reopened.batches == 4
    reopened.append([rec(6)])
    assert drain(reopened) == [2, 3, 4, 5, 6]


def test_batches_kept_in_memory_are_the_batches_on_disk(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**6, segment_bytes=2000)
    for start in range(0, 60, 6):
        spool.append([rec(n, "acct-a" if n % 3 else "acct-b") for n in range(start, start + 6)])
    on_disk = Spool(tmp_path, max_bytes=10**6, memory_records=0)  # reads the same files
    from_memory, from_files = spool.peek(10**6), on_disk.peek(10**6)
    assert from_memory is not None and from_files is not None
    assert from_memory[1:] == from_files[1:]  # same position after them, same batch count
    assert [r.model_dump() for r in from_memory[0]] == [r.model_dump() for r in from_files[0]]
    spool.drop(lambda r: r.account_id == "acct-b")  # moves the lines: memory is let go
    assert numbers(spool.peek(10**6)[0]) == [n for n in range(60) if n % 3]  # type: ignore[index]


def test_drop_removes_an_accounts_records_and_keeps_the_rest_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**6)
    for n in range(0, 40, 4):
        spool.append([rec(n, "acct-a"), rec(n + 1, "acct-b"), rec(n + 2, "acct-a"), rec(n + 3, "acct-b")])
    taken = spool.peek(4)
    assert taken is not None
    spool.commit(taken[1], taken[2])  # the first batch was sent already
    assert spool.drop(lambda r: r.account_id == "acct-b") == 18
    assert b"acct-b" not in b"".join(p.read_bytes() for p in tmp_path.glob("*.jsonl"))
    assert Spool(tmp_path, max_bytes=10**6).batches == 9  # what is on disk agrees
    assert drain(spool) == [n for n in range(4, 40) if n % 4 in (0, 2)]


class FlakySink:
    """A remote sink that is down until told otherwise; remembers what it received."""

    name = "remote"

    def __init__(self) -> None:
        self.up = threading.Event()
        self.received: list[int] = []
        self.erased: list[str] = []
        self.calls = 0

    def write(self, records: Sequence[TelemetryRecord]) -> int:
        self.calls += 1
        if not self.up.is_set():
            raise ConnectionError("server down")
        self.received += numbers(records)
        return len(records)

    def erase_account(
        self, account_id: str, classes: Sequence[RetentionClass], aggregate_text: frozenset[str]
    ) -> dict[str, int]:
        self.erased.append(account_id)
        return {}

    def purge_since(self, account_id: str, since: datetime, device_id: str | None = None) -> int:
        return 0

    def last_seen(self, account_id: str) -> dict[str, datetime]:
        return {}

    def close(self) -> None:
        pass


def test_the_worker_delivers_everything_in_order_after_an_outage(tmp_path: Path) -> None:
    inner, stats = FlakySink(), Stats()
    sink = SpooledSink(inner, tmp_path, stats, max_bytes=10**6, batch_records=50, max_backoff_s=0.05)
    sink.start()
    for start in range(0, 200, 20):
        assert sink.write([rec(n, "acct-a" if n % 2 else "acct-b") for n in range(start, start + 20)]) == 20
    eventually(lambda: inner.calls >= 3, what="retries while the server is down")
    assert inner.received == [] and sink.spool_batches == 10
    sink.erase_account("acct-b", [], frozenset())  # runs between two retries, while down
    assert inner.erased == ["acct-b"]
    inner.up.set()
    eventually(lambda: sink.spool_batches == 0, what="the spool drained")
    assert inner.received == list(range(1, 200, 2))  # in order; nothing of acct-b after its erasure
    assert sum(stats.stored_by_sink_class.values()) == 100
    sink.close()


def test_a_full_spool_refuses_loudly_and_a_restart_sends_what_was_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inner, stats = FlakySink(), Stats()
    sink = SpooledSink(inner, tmp_path, stats, max_bytes=4000, max_backoff_s=0.05)
    sink.start()
    kept = 0
    with caplog.at_level(logging.ERROR):
        for n in range(100):
            kept += sink.write([rec(n)])
    assert 0 < kept < 100
    assert stats.spool_refused["remote"] == 100 - kept == sink.refused
    assert any("SPOOL FULL" in r.message for r in caplog.records)
    sink.close(grace_s=0.1)  # still down: everything stays on disk

    inner.up.set()
    erased = {"0000000000" + f"{n:02d}" for n in (3, 4)}  # devices removed while it was stopped
    again = SpooledSink(inner, tmp_path, Stats(), max_bytes=4000, erased=lambda r: r.device_id in erased)
    again.start()
    eventually(lambda: again.spool_batches == 0, what="replay after restart")
    assert inner.received == [n for n in range(kept) if n not in (3, 4)]
    again.close()
