"""Every bundled profile against a real snmpd made to look like that model, over v2c (the
fast path) and over SNMPv3 authPriv / authNoPriv (pysnmp): every declared field must be
collected with the right value and type."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import ServiceConfig, SnmpConfig, SnmpCredential
from collector.core.records import FieldValue, Kind
from collector.profiles import load_profiles
from collector.sinks.sqlite import TelemetryQueries
from factories import served, snmp_device
from provisioning.registry import Registry
from runner import RunningService, eventually
from services import SnmpdFactory, V3User

PROFILES = load_profiles()
USERS = [
    V3User("ops256", "SHA-256", "auth-secret-256", "AES", "priv-secret-128"),
    V3User("ops512", "SHA-512", "auth-secret-512"),
    V3User("opsaes", "SHA", "auth-secret-sha1", "AES-256", "priv-secret-256"),
]


@pytest.mark.parametrize("profile_name", PROFILES.names)
def test_profile_fields_over_v2c_and_v3(
    tmp_path: Path, snmpd_factory: SnmpdFactory, monkeypatch: pytest.MonkeyPatch, profile_name: str
) -> None:
    profile = PROFILES.get(profile_name)
    specs = [s for s in profile.snmp if s.kind is not Kind.DIAGNOSTIC]
    overrides = {s.oid: served(s)[0] for s in specs}
    expected: dict[tuple[str, str], FieldValue] = {(s.kind.value, s.field): served(s)[1] for s in specs}
    agent = snmpd_factory(overrides, community="v2c-secret", v3_users=USERS)
    for user in USERS:
        monkeypatch.setenv(f"AUTH_{user.name}", user.auth_key)
        if user.priv_key:
            monkeypatch.setenv(f"PRIV_{user.name}", user.priv_key)
    cfg = ServiceConfig(
        data_dir=tmp_path / "data",
        snmp=SnmpConfig(interval_s=0.5, timeout_s=1.0, retries=0),
        credentials={
            "v2c": SnmpCredential.model_validate({"community": "v2c-secret"}),
            "v3priv": SnmpCredential(
                version="v3",
                user="ops256",
                auth_protocol="SHA-256",
                auth_key_env="AUTH_ops256",
                priv_protocol="AES-128",
                priv_key_env="PRIV_ops256",
            ),
            "v3auth": SnmpCredential(
                version="v3", user="ops512", auth_protocol="SHA-512", auth_key_env="AUTH_ops512"
            ),
            "v3aes256": SnmpCredential(
                version="v3",
                user="opsaes",
                auth_protocol="SHA",
                auth_key_env="AUTH_opsaes",
                priv_protocol="AES-256",
                priv_key_env="PRIV_opsaes",
            ),
        },
    )
    devices = [
        snmp_device(n, "acct-a", agent.port).model_copy(update={"profile": profile_name, "credentials": cred})
        for n, cred in enumerate(("v2c", "v3priv", "v3auth", "v3aes256"), start=1)
    ]
    Registry(cfg.data_dir / "registry.db").import_devices(devices, source="test")
    store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")

    def collected(device_id: str) -> dict[tuple[str, str], FieldValue]:
        return {(r.kind.value, f): v for r in store.query(device_id=device_id) for f, v in r.fields.items()}

    with RunningService(cfg):
        for device in devices:
            eventually(
                lambda d=device.id: set(expected) <= set(collected(d)),
                timeout=15,  # type: ignore[misc]
                what=f"every {profile_name} field from {device.credentials}",
            )
    for device in devices:
        got = collected(device.id)
        for key, value in expected.items():
            assert got[key] == value and type(got[key]) is type(value), (device.credentials, key, got[key])
    text = store.text_dump()
    assert not any(secret in text for secret in ("v2c-secret", "auth-secret", "priv-secret"))
