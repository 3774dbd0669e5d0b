"""Line protocol for TelemetryRecords: measurement = kind; `account_id`, `device_id`,
`firmware` and `model` as tags (sorted by key, as the server stores them); the fields typed
(`42i`, `4.12`, `"G722"`, `true`); nanosecond timestamps.

The write path's cost is mostly here, so the parts that repeat from record to record are
built once: a series' head (measurement and tags, keyed by the values it is made of) and
each escaped field key. Text that line protocol cannot carry is made safe rather than left
to break the line: a newline in a tag value becomes a space, and in a string field `\\n`.
"""

from __future__ import annotations

from collections.abc import Iterable

from collector.records import FieldValue, Kind, TelemetryRecord

_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": " ", "\r": " "})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_MAX_CACHED = 100_000  # series heads; about 20 MB at most, then the cache starts over

SeriesKey = tuple[Kind, str, str, str, str | None]


def _text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _value(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{int(value)}i"
    if isinstance(value, float):
        return repr(float(value))
    return _text(str(value))


def _head(kind: Kind, account_id: str, device_id: str, model: str, firmware: str | None) -> str:
    tags = (("account_id", account_id), ("device_id", device_id), ("firmware", firmware), ("model", model))
    tag_text = "".join(f",{k}={v.translate(_KEY_ESCAPES)}" for k, v in tags if v)
    return kind.value.translate(_MEASUREMENT_ESCAPES) + tag_text


class LineEncoder:
    """Turns records into lines; keeps a bounded cache of series heads and field keys."""

    def __init__(self) -> None:
        self._heads: dict[SeriesKey, str] = {}
        self._keys: dict[str, str] = {}

    def line(self, record: TelemetryRecord) -> str:
        key = (record.kind, record.account_id, record.device_id, record.model, record.firmware)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= _MAX_CACHED:
                self._heads.clear()
            head = self._heads[key] = _head(*key)
        keys = self._keys
        parts = []
        for name, value in record.fields.items():
            field = keys.get(name)
            if field is None:
                if len(keys) >= _MAX_CACHED:
                    keys.clear()
                field = keys[name] = name.translate(_KEY_ESCAPES)
            kind = type(value)
            if kind is float:
                parts.append(f"{field}={value!r}")
            elif kind is int:
                parts.append(f"{field}={value}i")
            elif kind is str:
                parts.append(f"{field}={_text(value)}")  # type: ignore[arg-type]
            else:
                parts.append(f"{field}={_value(value)}")
        # Exact to the microsecond: a float holds ~2e15 µs without rounding to a wrong value.
        stamp = round(record.observed_at.timestamp() * 1_000_000) * 1000
        return f"{head} {','.join(parts)} {stamp}"

    def lines(self, records: Iterable[TelemetryRecord]) -> list[str]:
        line = self.line
        return [line(r) for r in records]


def line_protocol(record: TelemetryRecord) -> str:
    """One record's line, without a cache (tests, one-off use)."""
    return LineEncoder().line(record)
