"""Decoders: profiles turn varbinds and payloads into typed fields; hostile input is rejected."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.core.errors import Rejected
from collector.core.records import Kind, QuarantineEntry
from collector.decode.mqtt import decode_mqtt
from collector.decode.snmp import decode_snmp
from collector.profiles import load_profiles

PROFILES = load_profiles()
HT = PROFILES.get("grandstream-ht8xx")
PHONE = PROFILES.get("yealink-t5x")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DEV = "805ec0123456"


def test_snmp_varbinds_become_typed_fields_per_kind() -> None:
    gs = "1.3.6.1.4.1.42397.1.2"  # GS-HT8XX-MIB::ht8xx
    varbinds = {
        "1.3.6.1.2.1.1.1.0": b"Grandstream HT812 \x00\x00 ",
        "1.3.6.1.2.1.1.2.0": f"{gs}.812",
        "1.3.6.1.2.1.1.3.0": 123456,
        "1.3.6.1.2.1.2.2.1.6.2": bytes.fromhex("000b82123456"),
        "1.3.6.1.2.1.2.2.1.8.2": 1,
        "1.3.6.1.2.1.47.1.1.1.1.10.1": b"1.0.45.2",  # entPhysicalSoftwareRev: versionCore wins
        f"{gs}.3.2.0": b"1.0.47.4",
        f"{gs}.2.2.1.0": b"registered",
        f"{gs}.4.1.0": 2,
        f"{gs}.2.2.2.0": None,  # noSuchObject: simply absent
    }
    observations, problems = decode_snmp(HT, "000b82123456", varbinds, NOW)
    by_kind = {o.kind: o.fields for o in observations}
    assert problems == []
    assert by_kind[Kind.INVENTORY] == {"description": "Grandstream HT812", "sys_object_id": f"{gs}.812"}
    assert by_kind[Kind.PERFORMANCE] == {"uptime_s": 1234}
    assert by_kind[Kind.NETWORK] == {"wan_mac": "00:0b:82:12:34:56", "wan_oper_status": "up"}
    assert by_kind[Kind.FIRMWARE] == {"version": "1.0.47.4"}
    assert by_kind[Kind.REGISTRATION] == {"line1_state": "registered"}
    assert by_kind[Kind.CONFIG] == {"network_mode": 2}
    assert all(o.source == "snmp" and o.observed_at == NOW for o in observations)


def test_snmp_value_of_wrong_type_is_reported_not_stored() -> None:
    oid = "1.3.6.1.4.1.5003.9.10.10.2.5.4.0"  # AC-SYSTEM-MIB::acSysStateGWSeverity, 0..5
    observations, problems = decode_snmp(PROFILES.get("audiocodes-mp11x"), "d", {oid: 9}, NOW)
    assert observations == []
    assert problems == [
        f"oid {oid} performance.alarm_severity: '9' is not one of ['0', '1', '2', '3', '4', '5']"
    ]


def test_mqtt_payload_maps_nested_paths_and_ignores_unlisted_data() -> None:
    payload = json.dumps(
        {
            "ts": NOW.timestamp() - 5,
            "call": {
                "mos": 4.05,
                "jitter_ms": 12,
                "loss_pct": 0.5,
                "codec": "G722",
                "remote_party": "+15551234567",
            },
        }
    ).encode()
    obs = decode_mqtt(PHONE, DEV, "call_quality", payload, NOW)
    assert obs.fields == {
        "mos": 4.05,
        "jitter_ms": 12,
        "loss_pct": 0.5,
        "codec": "G722",
    }  # P2: no phone number
    assert obs.observed_at == NOW - timedelta(seconds=5)
    assert obs.kind is Kind.CALL_QUALITY and obs.source == "mqtt"


@pytest.mark.parametrize(
    ("kind", "payload", "reason"),
    [
        ("signal", b"\xff\xfe{}", "invalid UTF-8 at byte 0"),
        ("signal", b'{"wifi": {"rssi": -50}', "invalid JSON"),
        ("signal", b'{"wifi": {"rssi": NaN}}', "JSON constant NaN is not allowed"),
        ("signal", b'{"wifi": {"rssi": Infinity}}', "JSON constant Infinity is not allowed"),
        ("signal", b'{"wifi": {"rssi": "strong"}}', "wifi.rssi: signal.wifi_rssi_dbm"),
        ("signal", b'{"wifi": {"rssi": -50.5}}', "not a whole number"),
        ("signal", b"[1, 2]", "must be a JSON object"),
        ("signal", b'{"wifi": {"rssi": {"v": 1}}}', "expected a value, got a dict"),
        ("signal", b'{"ts": 4102444800, "wifi": {"rssi": -50}}', "is in the future"),
        ("signal", b'{"ts": 1000, "wifi": {"rssi": -50}}', "older than 7 days"),
        ("signal", b'{"ts": "yesterday", "wifi": {"rssi": -50}}', "ts must be Unix seconds"),
        ("signal", b'{"device_id": "aa:bb:cc:dd:ee:ff", "wifi": {"rssi": -50}}', "contradicts topic device"),
        ("signal", b'{"battery": 80}', "no signal field"),
        ("voicemail", b"{}", "unknown record kind 'voicemail'"),
        ("signal", b"[" * 5000 + b"]" * 5000, "deeper than 16 levels"),
        ("signal", b'{"a":' * 40 + b"1" + b"}" * 40, "deeper than 16 levels"),
        ("signal", b" " * 70000, "exceeds the 65536-byte limit"),
    ],
)
def test_hostile_payloads_are_rejected_with_a_reason(kind: str, payload: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        decode_mqtt(PHONE, DEV, kind, payload, NOW)
    assert reason in caught.value.reason


def test_quarantine_entry_shows_first_bytes_escaped() -> None:
    entry = QuarantineEntry.of("mqtt", "hookflash/x/signal", b"\xff\x00abc" + b"z" * 100, "bad", NOW)
    assert entry.size == 105
    assert entry.head.startswith("\\xff\\x00abc") and len(entry.head) < 80


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_crash_the_decoder(payload: bytes) -> None:
    try:
        obs = decode_mqtt(PHONE, DEV, "signal", payload, NOW)
    except Rejected as exc:
        assert exc.reason
    else:
        assert set(obs.fields) <= {"wifi_rssi_dbm", "wifi_channel"}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["ts", "wifi", "call", "sip", "x"]), _json, max_size=4))
def test_arbitrary_json_objects_are_decoded_or_rejected_cleanly(document: dict[str, object]) -> None:
    payload = json.dumps(document).encode()
    for kind in ("signal", "call_quality", "registration"):
        try:
            obs = decode_mqtt(PHONE, DEV, kind, payload, NOW)
        except Rejected as exc:
            assert exc.reason
        else:
            assert obs.fields and all(isinstance(v, int | float | str | bool) for v in obs.fields.values())


@pytest.mark.parametrize(
    "raw",
    [
        bytes.fromhex("000b82abcdef"),
        "00:0b:82:ab:cd:ef",
        "00-0B-82-AB-CD-EF",
        "000b.82ab.cdef",
        "0x000B82ABCDEF",
        "00 0B 82 AB CD EF",
        b"00 0B 82 AB CD EF\x00",
    ],
)
def test_mac_conversion_accepts_octets_and_common_hex_strings(raw: bytes | str) -> None:
    from collector.decode.convert import convert
    from collector.profiles.model import FieldSpec

    spec = FieldSpec(kind=Kind.NETWORK, field="mac", type="mac")
    assert convert(spec, raw) == "00:0b:82:ab:cd:ef"


def test_six_printable_octets_are_still_a_binary_mac() -> None:
    from collector.decode.convert import convert
    from collector.profiles.model import FieldSpec

    assert convert(FieldSpec(kind=Kind.NETWORK, field="mac", type="mac"), b"ABCDEF") == "41:42:43:44:45:46"
