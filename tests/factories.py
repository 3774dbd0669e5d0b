"""Small builders shared by tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from collector.core.records import FieldValue, Kind, TelemetryRecord
from collector.core.stats import Stats
from collector.decode import Codec, MqttJsonCodec, SnmpCodec
from collector.gate import Gate
from collector.profiles import ProfileResolver, SnmpFieldSpec, load_profiles
from collector.retention import RetentionPolicy
from collector.runtime.intake import Intake
from collector.runtime.pipeline import Pipeline
from collector.sinks.sqlite import EmbeddedStore
from collector.tag import Tagger
from provisioning.models import Device, Transport

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def snmp_device(n: int, account: str, port: int = 1161, model: str = "HT812") -> Device:
    return Device(
        id=f"000b82{n:06x}",
        account_id=account,
        vendor="Grandstream",
        model=model,
        transport=Transport.SNMP,
        address=f"127.0.0.1:{port}",
        credentials="default",
    )


def mqtt_device(n: int, account: str, model: str = "T54W") -> Device:
    mac = f"805ec0{n:06x}"
    return Device(
        id=mac,
        account_id=account,
        vendor="Yealink",
        model=model,
        transport=Transport.MQTT,
        address=f"hookflash/{mac}",
    )


def record(
    policy: RetentionPolicy,
    device: Device,
    kind: Kind,
    fields: dict[str, FieldValue],
    at: datetime = T0,
    minutes: int = 0,
    firmware: str | None = "1.0.47.4",
) -> TelemetryRecord:
    return TelemetryRecord(
        device_id=device.id,
        account_id=device.account_id,
        kind=kind,
        observed_at=at + timedelta(minutes=minutes),
        fields=fields,
        retention_class=policy.kinds[kind],
        source="snmp",
        model=device.model,
        firmware=firmware,
    )


def telemetry_record(**changes: Any) -> TelemetryRecord:
    """One call-quality record of an HT812 with a fixed time; `changes` replace any field."""
    base: dict[str, Any] = dict(
        device_id="000b82000001",
        account_id="acct-a",
        kind=Kind.CALL_QUALITY,
        observed_at=datetime(2026, 11, 27, 8, 30, 1, 123456, tzinfo=UTC),
        fields={"mos": 4.12},
        retention_class="operational",
        source="snmp",
        model="HT812",
        firmware="1.0.47.4",
    )
    return TelemetryRecord(**{**base, **changes})


GS = "1.3.6.1.4.1.42397"
# snmpd `override` lines that make net-snmp look like a Grandstream HT812.
HT812_AGENT: dict[str, tuple[str, str | int]] = {
    "1.3.6.1.2.1.1.1.0": ("octet_str", "Grandstream HT812 1.0.47.4"),
    "1.3.6.1.2.1.1.2.0": ("object_id", f"{GS}.1.812"),
    "1.3.6.1.2.1.47.1.1.1.1.8.1": ("octet_str", "V2.1A"),
    "1.3.6.1.2.1.47.1.1.1.1.9.1": ("octet_str", "1.0.3.5"),
    "1.3.6.1.2.1.47.1.1.1.1.10.1": ("octet_str", "1.0.47.4"),
    "1.3.6.1.2.1.47.1.1.1.1.11.1": ("octet_str", "GS2234AB"),
    "1.3.6.1.2.1.47.1.1.1.1.13.1": ("octet_str", "HT812"),
    f"{GS}.1.2.1.1.0": ("integer", 1),
    f"{GS}.1.2.1.2.0": ("integer", 3),
    f"{GS}.1.3.1.1.0": ("gauge", 412),
    f"{GS}.1.3.1.2.0": ("gauge", 9),
    f"{GS}.1.3.1.3.0": ("gauge", 25),
    f"{GS}.1.3.1.4.0": ("counter", 17),
}


def intake_for(
    gate: Gate, store: EmbeddedStore, policy: RetentionPolicy, **pipeline_options: Any
) -> tuple[Intake, Pipeline]:
    """The runtime's real intake and pipeline in front of an embedded store, for tests that
    hand it observations (`intake.derived`) or items (`intake.receive`) directly."""
    stats = Stats()
    pipeline = Pipeline(gate, [store.sink], store.quarantine, stats, **pipeline_options)
    codecs: dict[str, Codec] = {"mqtt": MqttJsonCodec(), "snmp": SnmpCodec()}
    profiles = ProfileResolver(load_profiles())
    return Intake(gate, profiles, codecs, Tagger(policy), pipeline, stats), pipeline


def plausible(spec: SnmpFieldSpec, raw: int) -> int:
    """`raw` if its scaled value is in the field's plausible range, else a raw value near
    the middle of the range (out-of-range values quarantine the record; test_strict_input)."""
    scale = spec.scale or 1.0
    low = spec.min if spec.min is not None else float("-inf")
    high = spec.max if spec.max is not None else float("inf")
    if low <= raw * scale <= high:
        return raw
    if spec.min is not None and spec.max is not None:
        target = (low + high) / 2
    else:
        target = low if spec.min is not None else high
    return int(target / scale)


def served(spec: SnmpFieldSpec) -> tuple[tuple[str, str | int], FieldValue]:
    """What the agent serves for a field, and what hookflash must make of it."""
    if spec.type == "enum":
        assert spec.enum is not None
        key = sorted(spec.enum)[-1]
        return (("integer", int(key)) if key.isdigit() else ("octet_str", key)), spec.enum[key]
    if spec.type == "int":
        raw = plausible(spec, 42)
        return ("integer", raw), round(raw * spec.scale) if spec.scale else raw
    if spec.type == "float":
        raw = plausible(spec, 387)
        return ("gauge", raw), round(raw * (spec.scale or 1.0), 6)
    if spec.type == "timeticks_s":
        return ("timeticks", 123456), 1234
    if spec.type == "oid":
        return ("object_id", "1.3.6.1.4.1.99999.7"), "1.3.6.1.4.1.99999.7"
    if spec.type == "mac":
        return ("octet_str", "00-0B-82-AB-CD-EF"), "00:0b:82:ab:cd:ef"
    return ("octet_str", f"  {spec.field}-value\x00"), f"{spec.field}-value"  # DisplayString cleanup
