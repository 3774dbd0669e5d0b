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
from collector.sim.served import agent_values
from collector.sim.served import served as sim_served
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


GS = "1.3.6.1.4.1.42397.1.2"  # GS-HT8XX-MIB::ht8xx
# What a Grandstream HT812 reports, by kind and field: the values hookflash must store.
HT812_FIELDS: dict[str, dict[str, FieldValue]] = {
    "inventory": {
        "description": "Grandstream HT812 1.0.47.4",
        "sys_object_id": f"{GS}.812",
        "model_name": "HT812",
        "serial": "GS2234AB",
        "hardware_rev": "V2.1A",
        "part_number": "HT812",
    },
    "firmware": {
        "version": "1.0.47.4",
        "boot_version": "1.0.43.1",
        "base_version": "1.0.47.4",
        "prog_version": "1.0.47.4",
    },
    "registration": {"line1_state": "registered", "line2_state": "unregistered"},
    "config": {"network_mode": 0, "pppoe_link": 0, "nat_traversal_1": 1, "nat_traversal_2": 0},
}
# A wire type of the simulated agents (TypedValue kinds) -> the snmpd `override` type.
OVERRIDE_OF = {"integer": "integer", "gauge": "gauge", "counter32": "counter", "timeticks": "timeticks",
               "octets": "octet_str", "oid": "object_id"}  # fmt: skip


def agent_overrides(profile: str, fields: dict[str, dict[str, FieldValue]]) -> dict[str, tuple[str, Any]]:
    """snmpd `override` lines that make net-snmp serve `fields` the way a device of
    `profile` does: at the profile's OIDs, with the MIBs' types (collector.sim.served)."""
    flat = {(kind, name): value for kind, values in fields.items() for name, value in values.items()}
    served = agent_values(load_profiles().get(profile), flat)
    return {oid: (OVERRIDE_OF[tv.kind], tv.value) for oid, tv in served.items()}


HT812_AGENT = agent_overrides("grandstream-ht8xx", HT812_FIELDS)


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


def served(spec: SnmpFieldSpec) -> tuple[tuple[str, Any], FieldValue]:
    """What an agent serves for a field (the snmpd override type and value, typed as the
    field's MIB SYNTAX says), and what hookflash must make of it."""
    value: FieldValue
    if spec.type == "enum":
        assert spec.enum is not None
        value = spec.enum[sorted(spec.enum)[-1]]
    elif spec.type == "int":
        raw = plausible(spec, 42)
        value = round(raw * spec.scale) if spec.scale else raw
    elif spec.type == "float":
        value = round(plausible(spec, 387) * (spec.scale or 1.0), 6)
    elif spec.type == "timeticks_s":
        value = 1234
    elif spec.type == "oid":
        value = "1.3.6.1.4.1.99999.7"
    elif spec.type == "mac":
        value = "00:0b:82:ab:cd:ef"
    else:  # padded and NUL-terminated as some agents send a DisplayString: hookflash trims it
        wire = sim_served(spec, "").kind
        return (OVERRIDE_OF[wire], f"  {spec.field}-value\x00"), f"{spec.field}-value"
    typed = sim_served(spec, value)
    return (OVERRIDE_OF[typed.kind], typed.value), value
