"""Line protocol for TelemetryRecords: measurement = kind; `account_id`, `device_id`,
`firmware` and `model` as tags (sorted by key, as the server stores them); the fields typed
(`42i`, `4.12`, `"G722"`, `true`); nanosecond timestamps.

The write path's cost is mostly here, so the parts that repeat from record to record are
built once: a series' head (measurement and tags, keyed by the values it is made of) and
each escaped field key. Text that line protocol cannot carry is made safe rather than left
to break the line: in a tag value or field key a newline becomes a space and a trailing
backslash (which would escape the separator after it) is dropped; in a string field a
newline becomes `\\n`.
"""

from __future__ import annotations

from collections.abc import Iterable

from collector.records import FieldValue, Kind, TelemetryRecord

_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\ ", "\r": r"\ "})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_MAX_SERIES = 100_000  # cached series heads (about 20 MB at most), then the cache starts over
_MAX_CACHED = 10_000  # cached field keys, and text values of at most _MAX_CACHED_TEXT characters
_MAX_CACHED_TEXT = 64

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


def _key(text: str) -> str:
    """A tag value or field key: `,`, `=` and space escaped."""
    return text.rstrip("\\").translate(_KEY_ESCAPES)


def _head(kind: Kind, account_id: str, device_id: str, model: str, firmware: str | None) -> str:
    tags = (("account_id", account_id), ("device_id", device_id), ("firmware", firmware), ("model", model))
    tag_text = "".join(f",{k}={_key(v)}" for k, v in tags if v)
    return kind.value.translate(_MEASUREMENT_ESCAPES) + tag_text


class LineEncoder:
    """Turns records into lines; keeps bounded caches of series heads, field keys and text
    values (text fields are mostly small vocabularies: states, codecs, versions)."""

    def __init__(self) -> None:
        self._heads: dict[SeriesKey, str] = {}
        self._keys: dict[str, str] = {}
        self._texts: dict[str, str] = {}

    def line(self, record: TelemetryRecord) -> str:
        key = (record.kind, record.account_id, record.device_id, record.model, record.firmware)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= _MAX_SERIES:
                self._heads.clear()
            head = self._heads[key] = _head(*key) + " "
        keys, texts = self._keys, self._texts
        parts: list[str] = []
        add = parts.append
        for name, value in record.fields.items():
            field = keys.get(name)  # "name="
            if field is None:
                field = self._cache(keys, name, _key(name) + "=")
            kind = type(value)
            if kind is float:
                add(field + repr(value))
            elif kind is int:
                add(f"{field}{value}i")
            elif kind is str:
                text = texts.get(value)  # type: ignore[arg-type]
                if text is None:
                    text = self._cache(texts, value, _text(value))  # type: ignore[arg-type]
                add(field + text)
            else:
                add(field + _value(value))
        # Exact to the microsecond: a float holds ~2e15 µs without rounding to a wrong value.
        return f"{head}{','.join(parts)} {round(record.observed_at.timestamp() * 1_000_000) * 1000}"

    def lines(self, records: Iterable[TelemetryRecord]) -> list[str]:
        line = self.line
        return [line(r) for r in records]

    @staticmethod
    def _cache(cache: dict[str, str], key: str, value: str) -> str:
        if len(key) <= _MAX_CACHED_TEXT:  # longer ones are rarely repeated
            if len(cache) >= _MAX_CACHED:
                cache.clear()
            cache[key] = value
        return value


def line_protocol(record: TelemetryRecord) -> str:
    """One record's line, without a cache (tests, one-off use)."""
    return LineEncoder().line(record)
