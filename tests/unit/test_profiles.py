"""Device profiles are data: validated at load, `extends` resolved, user folders override."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.core.records import Kind
from collector.profiles import ProfileError, load_profiles


def test_bundled_profiles_resolve_with_extends() -> None:
    profiles = load_profiles()
    assert {"generic", "grandstream-ht8xx", "yealink-t5x"} <= set(profiles.names)
    ht = profiles.get("grandstream-ht8xx")
    generic_keys = {s.key for s in profiles.get("generic").snmp}
    assert generic_keys < {s.key for s in ht.snmp}  # every generic field, plus vendor fields
    version = next(s for s in ht.snmp if s.key == (Kind.FIRMWARE, "version"))
    assert version.mib == "GS-HT8XX-MIB::versionCore"  # overrides entPhysicalSoftwareRev
    assert {s.kind for s in ht.snmp} >= {Kind.FIRMWARE, Kind.REGISTRATION, Kind.CONFIG}
    assert {s.kind for s in profiles.get("yealink-t5x").mqtt} >= {Kind.SIGNAL, Kind.CALL_QUALITY}


BUNDLED = Path(__file__).parents[2] / "collector" / "profiles" / "bundled"


def test_no_bundled_oid_without_its_mib_object_and_syntax() -> None:
    """Every OID a bundled profile declares names the published MIB object it is and the
    SYNTAX that MIB gives it; no profile is marked unverified."""
    profiles = load_profiles()
    missing = []
    for name in profiles.names:
        profile = profiles.get(name)
        missing += [(name, s.oid) for s in profile.snmp if not (s.mib and s.syntax)]
        for table in profile.tables:
            missing += [(name, table.oid)] if not table.mib else []
            missing += [(name, f"{table.oid}.{c.column}") for c in table.columns if not (c.mib and c.syntax)]
    assert not missing
    for path in BUNDLED.glob("*.toml"):
        assert "UNVERIFIED" not in path.read_text().upper(), path.name


def test_profile_chosen_by_sysobjectid_prefix_then_generic() -> None:
    profiles = load_profiles()
    assert profiles.by_sysobjectid("1.3.6.1.4.1.42397.1.2.812").name == "grandstream-ht8xx"
    assert profiles.by_sysobjectid("1.3.6.1.4.1.423970.1").name == "generic"  # prefix is per arc
    assert profiles.by_model("Yealink", "T54W") is not None


def test_user_folder_overrides_bundled_and_can_extend_it(tmp_path: Path) -> None:
    (tmp_path / "grandstream-ht8xx.toml").write_text(
        'extends = ["generic"]\nvendor = "Grandstream"\nmodels = ["HT8"]\n'
        'sysobjectid = ["1.3.6.1.4.1.42397"]\n'
        '[[snmp]]\noid = "1.3.6.1.4.1.42397.9.9.0"\nkind = "signal"\nfield = "dect_rssi"\ntype = "int"\n'
    )
    (tmp_path / "acme-ata.toml").write_text(
        'extends = ["grandstream-ht8xx"]\n'
        '[[snmp]]\noid = "1.3.6.1.2.1.1.1.0"\nkind = "inventory"\nfield = "description"\ntype = "string"\n'
        'note = "same field as generic: replaces it"\noverride = true\n'
    )
    profiles = load_profiles([tmp_path])
    assert profiles.get("grandstream-ht8xx").origin == str(tmp_path / "grandstream-ht8xx.toml")
    acme = profiles.get("acme-ata")
    fields = [s.field for s in acme.snmp]
    assert fields.count("description") == 1 and "dect_rssi" in fields
    assert next(s for s in acme.snmp if s.field == "description").note.startswith("same field")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[snmp]]\noid = "sysUpTime.0"\nkind = "performance"\nfield = "up"\ntype = "int"\n',
            "is not a numeric OID",
        ),
        ('[[snmp]]\noid = "1.3.6.1.2.1.1.3.0"\nkind = "uptime"\nfield = "up"\ntype = "int"\n', "snmp.0.kind"),
        (
            '[[snmp]]\noid = "1.3.6.1.2.1.1.3.0"\nkind = "performance"\nfield = "up"\n'
            'type = "int"\ncommunity = "x"\n',
            "snmp.0.community: Extra inputs are not permitted",
        ),
        (
            '[[snmp]]\noid = "1.3.6.1.2.1.1.3.0"\nkind = "performance"\nfield = "up"\ntype = "enum"\n',
            "needs an enum table",
        ),
        ('extends = ["nope"]\n', "extends unknown profile 'nope'"),
        (
            '[[snmp]]\noid = "1.3.6.1.2.1.1.1.0"\nmib = "SNMPv2-MIB::sysDescr"\nsyntax = "DisplayString"\n'
            'kind = "inventory"\nfield = "d"\ntype = "int"\n',
            "type 'int' cannot read a DisplayString",
        ),
        (
            '[[snmp]]\noid = "1.3.6.1.2.1.1.1.0"\nmib = "sysDescr"\n'
            'kind = "inventory"\nfield = "d"\ntype = "string"\n',
            "must be MODULE::object",
        ),
        ('[[mqtt]]\npath = "a..b"\nkind = "signal"\nfield = "x"\ntype = "int"\n', "mqtt.0.path"),
        (
            '[[snmp]]\noid = "1.3.6.1.2.1.1.3.0"\nkind = "performance"\nfield = "Up Time"\ntype = "int"\n',
            "snake_case",
        ),
    ],
)
def test_invalid_profiles_fail_with_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "broken.toml").write_text(body)
    with pytest.raises(ProfileError) as caught:
        load_profiles([tmp_path])
    assert message in str(caught.value)
    assert "broken" in str(caught.value)


def test_extends_cycle_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extends = ["b"]\n')
    (tmp_path / "b.toml").write_text('extends = ["a"]\n')
    with pytest.raises(ProfileError, match="extends cycle"):
        load_profiles([tmp_path])


def test_duplicate_oid_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "dup.toml").write_text(
        'extends = ["generic"]\n[[snmp]]\noid = "1.3.6.1.2.1.1.3.0"\nkind = "performance"\n'
        'field = "uptime_again"\ntype = "int"\n'
    )
    with pytest.raises(ProfileError, match="declared twice"):
        load_profiles([tmp_path])
