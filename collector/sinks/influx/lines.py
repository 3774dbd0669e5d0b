"""Line protocol for TelemetryRecords: measurement = kind; `account_id`, `device_id`,
`firmware` and `model` as tags (sorted by key, as the server stores them); the fields typed
(`42i`, `4.12`, `"G722"`, `true`); nanosecond timestamps.

The write path's cost is mostly here, so the parts that repeat from record to record are
built once: a series' head (measurement and tags, keyed by the values it is made of) and
each escaped field key. Text that line protocol cannot carry is made safe rather than left
to break the line: in a tag value or field key a newline becomes a space and a trailing
backslash (which would escape the separator after it) is dropped; in a string field a
newline becomes `\\n`; a lone surrogate (valid in a Python str, not in UTF-8) becomes `?`.

The loop over the records runs in C (`_lines.c`, built at install) when it could be built:
about a fifth of the Python loop's CPU per point (0.47 against 2.5 µs). It asks this class
for heads, keys and quoted text (so the caches and the escaping rules live here alone) and
hands back to `_py_line` any record it does not handle. Without a C compiler the Python loop does it all,
with the same output.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from collector.core.records import FieldValue, TelemetryRecord

try:
    from collector.sinks.influx import _lines
except ImportError:  # built without a C compiler: the Python loop below
    _lines = None  # type: ignore[assignment]

_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\ ", "\r": r"\ "})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_MAX_SERIES = 100_000  # cached series heads (about 20 MB at most), then the cache starts over
_MAX_CACHED = 10_000  # cached field keys, and text values of at most _MAX_CACHED_TEXT characters
_MAX_CACHED_TEXT = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# (kind's value, account_id, device_id, model, firmware): what a series' head is made of
SeriesKey = tuple[str, str, str, str, str | None]

NATIVE = _lines is not None
"""The C loop was built and is used (by default)."""


def _utf8_safe(text: str) -> str:
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates become "?"


def _text(value: str) -> str:
    quoted = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + _utf8_safe(quoted) + '"'


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
    return _utf8_safe(text.rstrip("\\").translate(_KEY_ESCAPES))


def _head(kind: str, account_id: str, device_id: str, model: str, firmware: str | None) -> str:
    tags = (("account_id", account_id), ("device_id", device_id), ("firmware", firmware), ("model", model))
    tag_text = "".join(f",{k}={_key(v)}" for k, v in tags if v)
    return _utf8_safe(kind.translate(_MEASUREMENT_ESCAPES)) + tag_text


def _nanoseconds(moment: datetime) -> int:
    """Exact to the microsecond, in integers (a float of seconds is not, after 2041)."""
    if moment.tzinfo is None:  # naive: local time, as datetime.timestamp() takes it
        return round(moment.timestamp() * 1_000_000) * 1000
    return (moment - _EPOCH) // _MICROSECOND * 1000


class LineEncoder:
    """Turns records into lines; keeps bounded caches of series heads, field keys and text
    values (text fields are mostly small vocabularies: states, codecs, versions).
    `native=False` keeps to the Python loop (tests compare the two)."""

    def __init__(self, native: bool = True) -> None:
        self._heads: dict[SeriesKey, str] = {}
        self._keys: dict[str, str] = {}
        self._texts: dict[str, str] = {}
        self.native = native and NATIVE

    def lines(self, records: Sequence[TelemetryRecord]) -> list[str]:
        if self.native:
            return _lines.encode(self, records)
        line = self._py_line
        return [line(r) for r in records]

    def body(self, records: Sequence[TelemetryRecord]) -> bytes:
        """The records' lines as one UTF-8 post body, joined by newlines."""
        if self.native:
            return _lines.encode_body(self, records)
        return join_lines(self.lines(records))

    def line(self, record: TelemetryRecord) -> str:
        return self.lines([record])[0]

    # -- asked by the C loop too --------------------------------------------------------------

    def _head_for(self, key: SeriesKey) -> str:
        """The series' head and the space after it."""
        if len(self._heads) >= _MAX_SERIES:
            self._heads.clear()
        head = self._heads[key] = _head(*key) + " "
        return head

    def _field_key(self, name: str) -> str:
        """`name=`, escaped."""
        return self._cache(self._keys, name, _key(name) + "=")

    def _field_text(self, value: str) -> str:
        return self._cache(self._texts, value, _text(value))

    def _py_line(self, record: TelemetryRecord) -> str:
        key = (record.kind.value, record.account_id, record.device_id, record.model, record.firmware)
        head = self._heads.get(key) or self._head_for(key)
        keys, texts = self._keys, self._texts
        parts: list[str] = []
        add = parts.append
        for name, value in record.fields.items():
            field = keys.get(name) or self._field_key(name)
            kind = type(value)
            if kind is float:
                add(field + repr(value))
            elif kind is int:
                add(f"{field}{value}i")
            elif kind is str:
                add(field + (texts.get(value) or self._field_text(value)))  # type: ignore[arg-type]
            else:
                add(field + _value(value))
        return f"{head}{','.join(parts)} {_nanoseconds(record.observed_at)}"

    @staticmethod
    def _cache(cache: dict[str, str], key: str, value: str) -> str:
        if len(key) <= _MAX_CACHED_TEXT:  # longer ones are rarely repeated
            if len(cache) >= _MAX_CACHED:
                cache.clear()
            cache[key] = value
        return value


def join_lines(lines: Sequence[str]) -> bytes:
    return "\n".join(lines).encode()


def line_protocol(record: TelemetryRecord) -> str:
    """One record's line, without a cache (tests, one-off use)."""
    return LineEncoder().line(record)
