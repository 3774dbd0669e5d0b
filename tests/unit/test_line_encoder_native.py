"""The C loop of the line encoder (collector/sinks/_lines.c) against the Python one: same
lines for any record, the same caches, no references or memory kept."""

from __future__ import annotations

import gc
import math
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.core.records import Kind, TelemetryRecord
from collector.sinks.influx import lines as influx_lines
from collector.sinks.influx.lines import LineEncoder
from factories import telemetry_record

FIELDS = {"mos": 4.12, "jitter_ms": 3, "codec": "G722", "ok": True}


def record(**changes: Any) -> TelemetryRecord:
    return telemetry_record(**{"fields": FIELDS, **changes})


def both(records: list[TelemetryRecord]) -> tuple[list[str], list[str]]:
    return LineEncoder().lines(records), LineEncoder(native=False).lines(records)


def test_the_c_loop_is_built_and_used_here() -> None:
    # The test command installs with a compiler; without this the tests below compare the
    # Python loop with itself.
    assert influx_lines.NATIVE, "collector/sinks/_lines.c was not built (pip install -e . needs gcc)"
    assert LineEncoder().native and not LineEncoder(native=False).native


texts = st.text(max_size=12) | st.sampled_from(
    ["", "a b", "x,y=z", "tail\\", "line\nbreak", "\ud800", "ü€😀"]
)
decimals = st.builds(lambda m, places: m / 10**places, st.integers(-(10**17), 10**17), st.integers(0, 10))
values = st.one_of(
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),  # NaN and infinity too: both loops write what repr() writes
    decimals,  # the C loop's own shortcut for short decimals, and their neighbours
    decimals.map(lambda x: math.nextafter(x, math.inf)),
    texts,
)
moments = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=-5, minutes=-30)), timezone(timedelta(hours=14))]
    ),
) | st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1))  # naive


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "kind": st.sampled_from(list(Kind)),
                "account_id": texts.filter(bool),
                "device_id": texts.filter(bool),
                "model": texts,
                "firmware": st.none() | texts,
                "observed_at": moments,
                "fields": st.dictionaries(texts.filter(bool), values, min_size=1, max_size=5),
            }
        ),
        min_size=1,
        max_size=8,
    )
)
def test_the_c_loop_writes_what_the_python_loop_writes(rows: list[dict[str, Any]]) -> None:
    records = [record(**row) for row in rows]
    native, python = both(records)
    assert native == python
    assert (
        LineEncoder().body(records) == LineEncoder(native=False).body(records) == "\n".join(python).encode()
    )
    for line in native:
        line.encode()  # valid UTF-8 (a lone surrogate is made safe)
        assert "\n" not in line


def test_timestamps_from_json_and_in_other_zones_are_the_same_instant() -> None:
    moment = datetime(2031, 5, 6, 7, 8, 9, 654321, tzinfo=UTC)
    parsed = record(observed_at="2031-05-06T07:08:09.654321Z")  # pydantic's own tzinfo
    shifted = record(observed_at=moment.astimezone(timezone(timedelta(hours=9, minutes=45))))
    lines, _ = both([record(observed_at=moment), parsed, shifted])
    stamps = {line.rsplit(" ", 1)[1] for line in lines}
    assert stamps == {str((moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000)}


def test_floats_are_written_as_repr_writes_them() -> None:
    floats = [0.0, -0.0, 1e-4, 9.9e-5, 1e15, 1e16, 0.1 + 0.2, 1 / 3, 5e-324, 2.0**52, -37.5, 4.12, 1e-8]
    (line,) = LineEncoder().lines([record(fields={f"f{n}": x for n, x in enumerate(floats)})])
    assert line.split(" ")[1] == ",".join(f"f{n}={x!r}" for n, x in enumerate(floats))


def test_values_the_c_loop_leaves_to_python_are_handed_over() -> None:
    class Label(str):
        pass

    class Moment(datetime):  # may compute its own offset: only the Python loop asks it
        def utcoffset(self) -> timedelta:
            return timedelta(hours=1)

    labelled = record().model_dump()
    labelled["fields"] = {"label": Label("x y"), "n": 1}
    odd = [
        record(fields={"big": 2**64, "small": -(2**63)}),
        TelemetryRecord.model_construct(**labelled),  # pydantic would make the label a str
        record(observed_at=datetime(2300, 1, 1, tzinfo=UTC)),  # beyond int64 nanoseconds
        record(observed_at=Moment(2026, 1, 1, tzinfo=timezone(timedelta(hours=2)))),
    ]
    assert type(odd[1].fields["label"]) is Label and type(odd[3].observed_at) is Moment
    native, python = both(odd)
    assert native == python
    assert LineEncoder().body(odd + odd) == "\n".join(python + python).encode()
    assert native[0].endswith(f"big={2**64}i,small={-(2**63)}i {native[0].rsplit(' ', 1)[1]}")
    assert 'label="x y"' in native[1]
    assert int(native[2].rsplit(" ", 1)[1]) > 2**63
    assert native[3].endswith(" 1767218400000000000")  # the zone's 2 hours, as datetime arithmetic has it


def test_callbacks_that_change_the_batch_or_a_record_cannot_break_the_loop() -> None:
    records = [record(fields={"a": f"t{n}", "b": n}) for n in range(50)]
    batch = list(records)

    class Meddling(LineEncoder):
        def _field_text(self, value: str) -> str:
            batch.clear()  # the caller's list shrinks under the loop
            return super()._field_text(value)

    assert Meddling().lines(batch) == LineEncoder(native=False).lines(records)

    fields = {"a": "x", "b": 1}
    changing = TelemetryRecord.model_construct(**{**record().model_dump(), "fields": fields})

    class Growing(LineEncoder):
        def _field_key(self, name: str) -> str:
            fields[f"more{len(fields)}"] = 1
            return super()._field_key(name)

    with pytest.raises(RuntimeError, match="changed size during iteration"):
        Growing().lines([changing])


def test_caches_fill_and_start_over_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(influx_lines, "_MAX_SERIES", 3)
    monkeypatch.setattr(influx_lines, "_MAX_CACHED", 2)
    records = [record(device_id=f"dev{n % 5}", fields={f"k{n % 4}": f"v{n % 3}"}) for n in range(40)]
    native, python = LineEncoder(), LineEncoder(native=False)
    assert native.lines(records) == python.lines(records)
    assert native._heads == python._heads and len(native._heads) <= 3
    assert native._keys == python._keys and native._texts == python._texts


def test_no_reference_or_memory_is_kept() -> None:
    records = [
        record(device_id=f"dev{n % 50}", fields={"mos": n / 7, "n": n, "s": f"t{n % 9}"}) for n in range(2000)
    ]
    encoder = LineEncoder()
    probe = records[7]
    counts = (sys.getrefcount(probe), sys.getrefcount(probe.fields), sys.getrefcount(probe.observed_at))
    encoder.lines(records)  # fills the caches
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            encoder.lines(records)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes kept after 20 passes"
    assert (
        sys.getrefcount(probe),
        sys.getrefcount(probe.fields),
        sys.getrefcount(probe.observed_at),
    ) == counts


def test_a_record_list_is_required() -> None:
    with pytest.raises(TypeError, match="sequence"):
        LineEncoder().lines(42)  # type: ignore[arg-type]
