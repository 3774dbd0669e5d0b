"""A bounded, ordered, on-disk queue of record batches: the buffer in front of a remote sink.

Every batch for the sink is appended here first (write-ahead), and the sink's worker sends
from the oldest end; so what was accepted survives an outage of the server and a restart of
hookflash, and is sent in the order it was collected.

Layout of the directory: segment files `<n>.jsonl`, one batch per line (a JSON array of
compact rows), and `cursor.json`, the position of the oldest batch not yet sent. A line is
appended whole under the lock and flushed, so a killed process leaves at most a torn last
line, which is cut off when the spool is opened again (that batch was never acknowledged to
its source). Consumed segments are deleted.

The batches appended by this process are also kept in memory, up to `memory_records`, so
that while the server keeps up the worker sends them without reading and decoding them
back from disk; the files stay the truth (for a restart, or when the memory is full because
the server is down). Nothing else differs: the same batches, in the same order.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from collector.core.records import Kind, TelemetryRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int


def _row(r: TelemetryRecord) -> list[Any]:
    return [
        r.device_id,
        r.account_id,
        r.kind.value,
        r.observed_at.isoformat(),
        r.fields,
        r.retention_class,
        r.source,
        r.model,
        r.firmware,
    ]


def _record(row: list[Any]) -> TelemetryRecord:
    device_id, account_id, kind, observed_at, fields, retention_class, source, model, firmware = row
    # Rows were made from validated records by this process (or an earlier run of it).
    return TelemetryRecord.model_construct(
        device_id=device_id,
        account_id=account_id,
        kind=Kind(kind),
        observed_at=datetime.fromisoformat(observed_at),
        fields=fields,
        retention_class=retention_class,
        source=source,
        model=model,
        firmware=firmware,
        dedupe_key=None,
    )


class Spool:
    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        segment_bytes: int = 16 * 1024 * 1024,
        memory_records: int = 20_000,  # about 30 MB of records at most
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._lock = threading.Lock()
        # Batches appended by this process, by where their line starts: (records, line length).
        self._memory: dict[Position, tuple[Sequence[TelemetryRecord], int]] = {}
        self._memory_records = 0
        self._memory_limit = memory_records
        directory.mkdir(parents=True, exist_ok=True)
        self._cursor = self._load_cursor()
        segments = self._segments()
        for n in segments:
            if n < self._cursor.segment:
                self._path(n).unlink()  # consumed before a crash, not yet deleted
        segments = [n for n in segments if n >= self._cursor.segment]
        if segments:
            self._cut_torn_line(segments[-1])
        self._tail = segments[-1] if segments else self._cursor.segment
        self._appender: IO[bytes] | None = None
        self.bytes = 0
        self.batches = 0
        for n in segments:
            data = self._path(n).read_bytes()
            start = self._cursor.offset if n == self._cursor.segment else 0
            self.bytes += len(data) - start
            self.batches += data.count(b"\n", start)

    # -- files -----------------------------------------------------------------------------------

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}.jsonl"

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*.jsonl") if p.stem.isdigit())

    def _load_cursor(self) -> Position:
        try:
            raw = json.loads((self.directory / "cursor.json").read_text())
            return Position(int(raw["segment"]), int(raw["offset"]))
        except FileNotFoundError:
            return Position(0, 0)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"spool cursor {self.directory / 'cursor.json'} is unreadable: {exc}") from None

    def _cut_torn_line(self, segment: int) -> None:
        path = self._path(segment)
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            log.warning("spool %s: dropping a torn last batch (%d bytes)", path, len(data) - keep)
            with path.open("r+b") as f:
                f.truncate(keep)

    # -- writing ---------------------------------------------------------------------------------

    def append(self, records: Sequence[TelemetryRecord]) -> bool:
        """Add one batch at the young end; False (and nothing written) when it would not fit."""
        line = json.dumps([_row(r) for r in records], separators=(",", ":")).encode() + b"\n"
        with self._lock:
            if self.bytes + len(line) > self.max_bytes:
                return False
            if self._appender is None or self._appender.tell() >= self._segment_bytes:
                if self._appender is not None:
                    self._appender.close()
                    self._tail += 1
                self._appender = self._path(self._tail).open("ab")
            start = Position(self._tail, self._appender.tell())
            self._appender.write(line)
            self._appender.flush()  # in the OS now: survives the process being killed
            self.bytes += len(line)
            self.batches += 1
            if self._memory_records + len(records) <= self._memory_limit:
                self._memory[start] = (records, len(line))
                self._memory_records += len(records)
        return True

    # -- reading ---------------------------------------------------------------------------------

    def peek(self, max_records: int) -> tuple[list[TelemetryRecord], Position, int] | None:
        """The oldest batches (at least one, then whole batches up to `max_records`), the
        position after them, and how many batches that is; None when the spool is empty."""
        with self._lock:
            records: list[TelemetryRecord] = []
            position, taken = self._cursor, 0
            while self.batches - taken > 0 and (not records or len(records) < max_records):
                batch, length = self._memory.get(position) or self._read(position)
                if not length:  # the end of a segment that was rolled over
                    position = Position(position.segment + 1, 0)
                    continue
                if records and len(records) + len(batch) > max_records:
                    break
                records.extend(batch)
                position, taken = Position(position.segment, position.offset + length), taken + 1
            return (records, position, taken) if taken else None

    def _read(self, position: Position) -> tuple[Sequence[TelemetryRecord], int]:
        with self._path(position.segment).open("rb") as f:
            f.seek(position.offset)
            line = f.readline()
        return ([_record(row) for row in json.loads(line)] if line else []), len(line)

    def commit(self, position: Position, batches: int) -> None:
        """Everything before `position` was delivered: forget it."""
        with self._lock:
            old = self._cursor
            self.bytes -= self._distance(old, position)
            self.batches -= batches
            self._cursor = position
            for start in [p for p in self._memory if p < position]:
                self._memory_records -= len(self._memory.pop(start)[0])
            tmp = self.directory / "cursor.json.tmp"
            tmp.write_text(json.dumps({"segment": position.segment, "offset": position.offset}))
            os.replace(tmp, self.directory / "cursor.json")
            for n in range(old.segment, position.segment):
                self._path(n).unlink(missing_ok=True)

    def _distance(self, start: Position, end: Position) -> int:
        if start.segment == end.segment:
            return end.offset - start.offset
        total = self._path(start.segment).stat().st_size - start.offset
        for n in range(start.segment + 1, end.segment):
            total += self._path(n).stat().st_size
        return total + end.offset

    # -- erasure ---------------------------------------------------------------------------------

    def drop(self, matches: Callable[[TelemetryRecord], bool]) -> int:
        """Remove every waiting record that `matches` (an erased account's, say), rewriting the
        segments; returns how many were removed."""
        removed = 0
        with self._lock:
            self._memory.clear()  # the lines move: read them back from the files
            self._memory_records = 0
            if self._appender is not None:
                self._appender.close()
                self._appender = None
            self.bytes = self.batches = 0
            for n in [s for s in self._segments() if s >= self._cursor.segment]:
                path = self._path(n)
                data = path.read_bytes()
                start = self._cursor.offset if n == self._cursor.segment else 0
                kept: list[bytes] = []
                for line in data[start:].splitlines():
                    rows = json.loads(line)
                    left = [row for row in rows if not matches(_record(row))]
                    removed += len(rows) - len(left)
                    if left:
                        kept.append(json.dumps(left, separators=(",", ":")).encode() + b"\n")
                # What was already sent is blanked out, not kept: the cursor stays valid.
                consumed = b" " * (start - 1) + b"\n" if start else b""
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(consumed + b"".join(kept))
                os.replace(tmp, path)
                self.bytes += sum(map(len, kept))
                self.batches += len(kept)
        return removed

    def close(self) -> None:
        with self._lock:
            if self._appender is not None:
                self._appender.close()
                self._appender = None
