"""Line protocol, the server's answers (reason, Retry-After, isolation budget) and the
[influx] config, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.config import InfluxConfig, config_from_dict
from collector.config.snmp import ConfigError
from collector.sinks.influx.lines import LineEncoder, line_protocol
from collector.sinks.influx.status import isolation_budget, retry_after_s, server_message
from factories import telemetry_record as record

CLASSES = ["account_lifetime", "identifying", "operational", "troubleshooting"]




def test_types_tags_and_nanosecond_timestamp() -> None:
    line = line_protocol(record(fields={"mos": 4.0, "jitter_ms": -3, "ok": False, "state": "up"}))
    assert line == (
        "call_quality,account_id=acct-a,device_id=000b82000001,firmware=1.0.47.4,model=HT812 "
        'mos=4.0,jitter_ms=-3i,ok=false,state="up" 1795768201123456000'
    )


def test_text_that_line_protocol_cannot_carry_is_made_safe() -> None:
    line = line_protocol(
        record(
            model="HT 8,1=2\n\\",
            firmware=None,
            fields={"a key,x=y": 'say "hi"\\\nbye', "n": 1},
        )
    )
    assert "\n" not in line
    assert line.startswith(r"call_quality,account_id=acct-a,device_id=000b82000001,model=HT\ 8\,1\=2\  ")
    assert r'a\ key\,x\=y="say \"hi\"\\\nbye",n=1i' in line
    assert "firmware" not in line  # empty tags are left out


def test_timestamps_keep_microseconds_exactly() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    encoder = LineEncoder()
    for micros in (0, 1, 999_999, 123_457, 500_001):
        moment = start + timedelta(days=300, microseconds=micros)
        stamp = int(encoder.line(record(observed_at=moment)).rsplit(" ", 1)[1])
        assert stamp == ((moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)) * 1000


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(
            st.booleans(),
            st.integers(-(2**63), 2**63 - 1),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(max_size=20),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_cached_encoder_matches_a_fresh_one(fields: dict[str, Any]) -> None:
    encoder = LineEncoder()
    first = encoder.line(record(fields=fields))
    assert encoder.line(record(fields=fields)) == first == line_protocol(record(fields=fields))
    assert first.count("\n") == 0


def test_server_message_is_one_short_line_without_the_token() -> None:
    influx = b'{"code":"invalid","message":"unable to parse \'x y\': bad\\nfield"}'
    assert server_message(influx) == "unable to parse 'x y': bad field"
    assert server_message("proxy says Token s3cret is bad", "s3cret") == "proxy says Token *** is bad"
    assert len(server_message("x" * 1000)) == 300
    assert server_message(None) == ""


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 11, 27, 8, 0, 0, tzinfo=UTC)
    assert retry_after_s("120", now) == 120.0
    assert retry_after_s("Fri, 27 Nov 2026 08:01:30 GMT", now) == 90.0
    assert retry_after_s("Fri, 27 Nov 2026 07:00:00 GMT", now) == 0.0
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None


def test_isolation_budget_grows_with_the_halvings() -> None:
    assert isolation_budget(1) == 8
    assert isolation_budget(5000) == 8 * 13


def test_bucket_names_default_to_prefix_and_class() -> None:
    config = InfluxConfig(buckets={"operational": "noc-ops"}, bucket_prefix="hf_")
    assert config.bucket_names(CLASSES) == {
        "account_lifetime": "hf_account_lifetime",
        "identifying": "hf_identifying",
        "operational": "noc-ops",
        "troubleshooting": "hf_troubleshooting",
    }
    assert (config.batch_lines, config.gzip_level) == (5000, 1)


@pytest.mark.parametrize(
    ("influx", "expected"),
    [
        ({"buckets": {"operational": "_monitoring"}}, "influx.buckets.operational"),
        ({"buckets": {"operational": 'a"b'}}, "influx.buckets.operational"),
        ({"batch_lines": 0}, "influx.batch_lines"),
        ({"gzip_level": 10}, "influx.gzip_level"),
        ({"bucket": "x"}, "influx.bucket"),
    ],
)
def test_bad_influx_keys_are_named_at_load(influx: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        config_from_dict({"influx": influx}, "test.toml")


def test_unknown_or_shared_classes_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown retention class\(es\) 'operatonal'; the policy defines"):
        InfluxConfig(buckets={"operatonal": "x"}).bucket_names(CLASSES, "the policy")
    with pytest.raises(ConfigError, match="'x' would hold several retention classes"):
        InfluxConfig(buckets={"operational": "x", "identifying": "x"}).bucket_names(CLASSES)
    with pytest.raises(ConfigError, match="would hold several"):
        InfluxConfig(buckets={"operational": "hookflash-identifying"}).bucket_names(CLASSES)
