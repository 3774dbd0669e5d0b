"""Records ending by `anonymize` become aggregates that single out no one (P5).

The records one erasure or one sweep ends are folded together, in memory: per bucket
(retention class, kind, model, firmware, day, field) a count, sum, minimum and maximum,
and the devices and accounts they came from. A bucket is kept only when those are at least
k devices of at least k accounts (`min_group_size`); what is left of smaller buckets is
merged into the model's bucket (firmware "*"), then into every model's (model "*"), and
dropped if even that is too small. The devices and accounts are counted in memory only:
nothing written says which devices a bucket holds, and a bucket grows only by another
group of at least k (so comparing two versions of it reveals no single device). Text
values are kept for the listed fields only, and from each field's vocabulary only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from collector.core.records import Anonymization

ANY = "*"
_UPSERT = """
INSERT INTO aggregates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (retention_class, kind, model, firmware, day, field) DO UPDATE SET
    count = count + excluded.count,
    sum = CASE WHEN excluded.sum IS NULL THEN sum ELSE coalesce(sum, 0) + excluded.sum END,
    min = CASE WHEN excluded.min IS NULL THEN min ELSE min(coalesce(min, excluded.min), excluded.min) END,
    max = CASE WHEN excluded.max IS NULL THEN max ELSE max(coalesce(max, excluded.max), excluded.max) END
"""
Key = tuple[str, str, str, str, str, str]  # class, kind, model, firmware, day, field


@dataclass
class _Bucket:
    count: int = 0
    total: float | None = None
    low: float | None = None
    high: float | None = None
    devices: set[str] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)

    def add(self, value: float | None, device: str, account: str) -> None:
        self.count += 1
        if value is not None:
            self.total = (self.total or 0.0) + value
            self.low = value if self.low is None else min(self.low, value)
            self.high = value if self.high is None else max(self.high, value)
        self.devices.add(device)
        self.accounts.add(account)

    def merge(self, other: _Bucket) -> None:
        self.count += other.count
        if other.total is not None:
            self.total = (self.total or 0.0) + other.total
        if other.low is not None:
            self.low = other.low if self.low is None else min(self.low, other.low)
        if other.high is not None:
            self.high = other.high if self.high is None else max(self.high, other.high)
        self.devices |= other.devices
        self.accounts |= other.accounts

    def big_enough(self, k: int) -> bool:
        return len(self.devices) >= k and len(self.accounts) >= k


def fold(db: sqlite3.Connection, rows: Iterable[sqlite3.Row], rules: Anonymization) -> int:
    """Fold ended records into the aggregates; returns how many buckets were kept."""
    buckets: dict[Key, _Bucket] = {}
    for row in rows:
        day = datetime.fromtimestamp(row["observed_at"], UTC).strftime("%Y-%m-%d")
        head = (row["retention_class"], row["kind"], row["model"], row["firmware"] or "", day)
        device, account = row["device_id"], row["account_id"]
        for name, value in json.loads(row["fields"]).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                if name not in rules.text_fields or not isinstance(value, str | bool):
                    continue  # free text outside the list: dropped
                vocabulary = rules.text_values.get(name)
                text = str(value) if vocabulary is None or str(value) in vocabulary else "other"
                buckets.setdefault((*head, f"{name}={text}"), _Bucket()).add(None, device, account)
                continue
            buckets.setdefault((*head, name), _Bucket()).add(float(value), device, account)
    kept = 0
    for level in (_exact, _any_firmware, _any_model):
        merged: dict[Key, _Bucket] = {}
        for key, bucket in buckets.items():
            merged.setdefault(level(key), _Bucket()).merge(bucket)
        buckets = {}
        for key, bucket in merged.items():
            if bucket.big_enough(rules.min_group_size):
                db.execute(_UPSERT, (*key, bucket.count, bucket.total, bucket.low, bucket.high))
                kept += 1
            else:
                buckets[key] = bucket  # tried again one level up
    return kept  # what is left in `buckets` is too small even for every model: dropped


def _exact(key: Key) -> Key:
    return key


def _any_firmware(key: Key) -> Key:
    cls, kind, model, _firmware, day, name = key
    return (cls, kind, model, ANY, day, name)


def _any_model(key: Key) -> Key:
    cls, kind, _model, _firmware, day, name = key
    return (cls, kind, ANY, ANY, day, name)
