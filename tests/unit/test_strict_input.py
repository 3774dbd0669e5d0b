"""Values no device can mean are refused with the field and the value; one rule for text
where a number is wanted (ts included); config and profiles validated strictly, every
problem reported at once, naming the file and the key."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.config import ConfigError, load_config
from collector.core.errors import ProfileError, Rejected
from collector.decode.convert import parse_number
from collector.decode.mqtt import decode_mqtt
from collector.decode.snmp import decode_snmp
from collector.profiles import load_profiles

PROFILES = load_profiles()
YEALINK, HT = PROFILES.get("yealink-t5x"), PROFILES.get("grandstream-ht8xx")
NOW = datetime.now(UTC)


def call(mos: object, **extra: object) -> bytes:
    return json.dumps({"call": {"mos": mos}, **extra}).encode()


@pytest.mark.parametrize(
    ("mos", "why"),
    [
        (1e308, "above the plausible maximum 5"),
        (-5, "below the plausible minimum 1"),
        (1.18e21, "above the plausible maximum 5"),
        (5.01, "above the plausible maximum 5"),
        ("4,1", "is not a decimal number"),
        ("nan", "is not a decimal number"),
        ("0x4", "is not a decimal number"),
        (True, "boolean"),
        (int("9" * 400), "beyond 64 bits"),
    ],
)
def test_implausible_values_are_refused_naming_the_field_and_value(mos: object, why: str) -> None:
    with pytest.raises(Rejected) as refused:
        decode_mqtt(YEALINK, "805ec0000001", "call_quality", call(mos), NOW)
    assert refused.value.reason.startswith("call.mos: call_quality.mos: ") and why in refused.value.reason


@pytest.mark.parametrize(("mos", "stored"), [(4.1, 4.1), ("4.1", 4.1), (" 3.5 ", 3.5), (1, 1.0), ("5", 5.0)])
def test_numbers_and_decimal_text_are_accepted_alike(mos: object, stored: float) -> None:
    assert decode_mqtt(YEALINK, "805ec0000001", "call_quality", call(mos), NOW).fields == {"mos": stored}


def test_the_same_rule_holds_for_ts() -> None:
    received = datetime.now(UTC)
    now = int(received.timestamp())
    text = decode_mqtt(YEALINK, "805ec0000001", "call_quality", call(4.0, ts=str(now - 10)), received)
    number = decode_mqtt(YEALINK, "805ec0000001", "call_quality", call(4.0, ts=now - 10), received)
    assert text.observed_at == number.observed_at
    with pytest.raises(Rejected, match="ts must be Unix seconds: '17e8x' is not a decimal number"):
        decode_mqtt(YEALINK, "805ec0000001", "call_quality", call(4.0, ts="17e8x"), NOW)


@pytest.mark.parametrize("text", ["1", "-1.5", "+2.", ".5", "1e9", "1.7E+09", "\x004.2\x00"])
def test_decimal_text(text: str) -> None:
    assert parse_number(text) == float(text.strip("\x00"))


@pytest.mark.parametrize(
    "text", ["", " ", "1_000", "inf", "-Infinity", "NaN", "1e", "e5", "4,1", "--1", "1 2"]
)
def test_not_decimal_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a decimal number"):
        parse_number(text)


def test_an_snmp_record_out_of_range_is_refused_whole_and_the_others_kept() -> None:
    ac = "1.3.6.1.4.1.5003.9.10.10.2"  # AC-SYSTEM-MIB::acSystemStatus
    answer = {f"{ac}.3.2.0": -5, f"{ac}.3.1.0": b"MP-118 FXS", "1.3.6.1.2.1.1.3.0": 12_300}  # serial -5
    observations, refused = decode_snmp(PROFILES.get("audiocodes-mp11x"), "d", answer, NOW)
    assert {o.kind.value for o in observations} == {"performance"}  # not inventory in part
    assert refused == [f"oid {ac}.3.2.0 inventory.board_serial: -5 is below the plausible minimum 0"]


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hookflash.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[mqtt]\nport = "9"\n', "mqtt.port"),
        ('[mqtt]\nenabled = "no"\n', "mqtt.enabled"),
        ('[mqtt]\ntls = "yes"\n', "mqtt.tls"),
        ("[mqtt]\nqos = true\n", "mqtt.qos"),
        ('[snmp]\ninterval_s = "60"\n', "snmp.interval_s"),
        ("[api]\nport = 8480.5\n", "api.port"),
    ],
)
def test_a_string_or_boolean_where_a_number_is_wanted_stops_start_up(
    tmp_path: Path, text: str, key: str
) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(refused.value).startswith(f"{path}: {key}: ")


def test_every_config_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[mqtt]\nport = "9"\ntls = "yes"\n[snmp]\nretries = "2"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert all(key in str(refused.value) for key in ("mqtt.port", "mqtt.tls", "snmp.retries"))


def test_paths_enums_and_durations_still_come_from_text(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, 'data_dir = "d"\n[snmp]\nintervals = { inventory = 3600 }\n[mqtt]\nqos = 0\n'
    )
    config = load_config(path)
    assert (
        config.data_dir == tmp_path / "d"
        and config.snmp.intervals == {"inventory": 3600}
        and config.mqtt.qos == 0
    )


FIELD = '[[snmp]]\noid = "{oid}"\nkind = "inventory"\nfield = "{field}"\ntype = "string"\n'


def test_a_field_declared_twice_in_a_file_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(
        'extends = ["generic"]\n'
        + FIELD.format(oid="1.3.6.1.4.1.99.1.0", field="serial")
        + FIELD.format(oid="1.3.6.1.4.1.99.2.0", field="serial")
    )
    with pytest.raises(ProfileError, match=r"acme \(.*acme.toml\): snmp inventory.serial is declared twice"):
        load_profiles([tmp_path])


def test_redefining_a_parents_field_needs_override_and_the_error_names_both_files(tmp_path: Path) -> None:
    (tmp_path / "acme.toml").write_text(
        'extends = ["generic"]\n' + FIELD.format(oid="1.3.6.1.4.1.99.1.0", field="description")
    )
    with pytest.raises(ProfileError) as refused:
        load_profiles([tmp_path])
    message = str(refused.value)
    redefines = "snmp inventory.description redefines the one in bundled generic.toml"
    assert f"{tmp_path / 'acme.toml'}): {redefines}" in message
    assert "override = true" in message
    (tmp_path / "acme.toml").write_text(
        'extends = ["generic"]\n'
        + FIELD.format(oid="1.3.6.1.4.1.99.1.0", field="description")
        + "override = true\n"
    )
    acme = load_profiles([tmp_path]).get("acme")
    assert [s.oid for s in acme.snmp if s.field == "description"] == ["1.3.6.1.4.1.99.1.0"]


def test_every_profile_problem_is_reported_at_once_with_its_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extends = ["nowhere"]\n')
    (tmp_path / "b.toml").write_text(
        '[[snmp]]\noid = "1.3.6.1.2.1.1.5.0"\nkind = "inventory"\nfield = "x"\ntype = "int"\nmax = "9"\n'
    )
    (tmp_path / "c.toml").write_text(
        '[[mqtt]]\npath = "a.b"\nkind = "signal"\nfield = "rssi"\ntype = "float"\nmin = 5\nmax = 1\n'
    )
    with pytest.raises(ProfileError) as refused:
        load_profiles([tmp_path])
    message = str(refused.value)
    assert f"profile a ({tmp_path / 'a.toml'}): extends unknown profile 'nowhere'" in message
    assert f"profile b ({tmp_path / 'b.toml'}): snmp.0.max: Input should be a valid number" in message
    assert f"profile c ({tmp_path / 'c.toml'}): mqtt.0: min 5 is above max 1" in message


def test_every_bundled_number_with_a_physical_range_declares_it() -> None:
    ranged = {"mos", "loss_pct", "jitter_ms", "wifi_rssi_dbm", "uptime_s", "cpu_pct", "wifi_channel"}
    for name in PROFILES.names:
        profile = PROFILES.get(name)
        for spec in (*profile.snmp, *profile.mqtt):
            if spec.field in ranged:
                assert spec.min is not None, (name, spec.field)


def test_a_remote_store_that_cannot_erase_is_refused_unless_its_retention_is_declared(tmp_path: Path) -> None:
    """P5: an account's data must be erasable wherever it is sent."""
    path = write_config(tmp_path, '[influx]\nenabled = true\nserver = "other"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "influx" in str(refused.value) and 'influx.erasure = "server_retention"' in str(refused.value)
    text = '[influx]\nenabled = true\nserver = "other"\nerasure = "server_retention"\n'
    path = write_config(tmp_path, text)
    assert load_config(path).influx.erasure == "server_retention"
