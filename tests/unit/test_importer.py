"""Device import: every bad row reported with its line, and nothing imported when any is bad."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from provisioning.importer import ImportRejected, parse_devices
from provisioning.models import Device, Transport, normalize_mac
from provisioning.registry import Registry
from provisioning.validation import describe

HEADER = "device_id,account_id,vendor,model,profile,transport,address,credentials\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_rows_are_validated_and_normalized(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "devices.csv",
        HEADER
        + "00:0B:82:12:34:56,acct-1,Grandstream,HT812,,snmp,10.0.0.5:161,office\n"
        + "805e-c012-3456,acct-2,Yealink,T54W,yealink-t5x,mqtt,hookflash/805ec0123456,\n",
    )
    devices = parse_devices(path)
    assert [d.id for d in devices] == ["000b82123456", "805ec0123456"]
    assert devices[0].transport is Transport.SNMP and devices[0].snmp_endpoint() == ("10.0.0.5", 161)
    assert devices[1].profile == "yealink-t5x" and devices[1].credentials == ""


def test_every_bad_row_is_reported_with_its_line_and_nothing_is_imported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "devices.csv",
        HEADER
        + "000b82000001,acct-1,Grandstream,HT812,,snmp,127.0.0.1:1161,\n"  # line 2 ok
        + "not-a-mac,acct-1,Grandstream,HT812,,snmp,127.0.0.1:1161,\n"  # line 3
        + "000b82000003,acct-1,Grandstream,HT812,,telnet,127.0.0.1,\n"  # line 4
        + "000b82000004,acct 1,Grandstream,HT812,,snmp,127.0.0.1,\n"  # line 5
        + "000b82000005,acct-1,Yealink,T54W,,mqtt,hookflash/#,\n"  # line 6
        + "000b82000001,acct-1,Grandstream,HT812,,snmp,127.0.0.1:99999,\n",
    )  # line 7
    with pytest.raises(ImportRejected) as caught:
        parse_devices(path)
    errors = {e.line: e.reason for e in caught.value.errors}
    assert sorted(errors) == [3, 4, 5, 6, 7]
    assert "not a MAC address: 'not-a-mac'" in errors[3]
    assert errors[4].startswith("transport:")
    assert "bad account id 'acct 1'" in errors[5]
    assert "wildcards" in errors[6]
    assert "port out of range" in errors[7]
    assert "nothing imported" in str(caught.value)


def test_cli_import_with_bad_rows_leaves_registry_empty(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from collector.cli.main import cli

    path = write(
        tmp_path,
        "devices.csv",
        HEADER
        + "000b82000001,acct-1,Grandstream,HT812,,snmp,127.0.0.1:1161,\n"
        + "000b82000002,,Grandstream,HT812,,snmp,127.0.0.1:1161,\n",
    )
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(cli, ["devices", "import", str(path), "--data-dir", str(data_dir)])
    assert result.exit_code == 2
    assert "devices.csv:line 3: account_id" in result.output
    assert Registry(data_dir / "registry.db").devices() == []


def test_json_array_reports_line_of_each_bad_object(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "devices.json",
        """[
  {"mac": "000b82000001", "account": "a1", "vendor": "Grandstream", "model": "HT812",
   "transport": "snmp", "address": "127.0.0.1:1161"},
  {"mac": "000b82000002", "account": "a1", "vendor": "Grandstream", "model": "HT812",
   "transport": "snmp", "address": "127.0.0.1:1161", "password": "hunter2"},
  42
]""",
    )
    with pytest.raises(ImportRejected) as caught:
        parse_devices(path)
    errors = {e.line: e.reason for e in caught.value.errors}
    assert list(errors) == [4, 6]
    assert "password: Extra inputs are not permitted" in errors[4]
    assert "hunter2" not in str(caught.value)  # a secret typed into a device file is not echoed
    assert "expected an object" in errors[6]


def test_jsonl_and_duplicate_detection(tmp_path: Path) -> None:
    line = (
        '{"id": "000b82000001", "account_id": "a1", "vendor": "G", "model": "HT812",'
        ' "transport": "snmp", "address": "h"}\n'
    )
    with pytest.raises(ImportRejected) as caught:
        parse_devices(write(tmp_path, "d.jsonl", line + line))
    assert [str(e) for e in caught.value.errors] == [
        "line 2: duplicate device 000b82000001 (first on line 1)"
    ]


def test_import_creates_accounts_and_emits_events(tmp_path: Path) -> None:
    path = write(
        tmp_path, "devices.csv", HEADER + "000b82000001,acct-1,Grandstream,HT812,,snmp,127.0.0.1:1161,\n"
    )
    registry = Registry(tmp_path / "registry.db")
    registry.import_devices(parse_devices(path), source=str(path))
    assert [(a.id, a.status.value) for a in registry.accounts()] == [("acct-1", "active")]
    assert [e.type.value for e in registry.events_since(0)] == ["AccountActivated", "DeviceAdded"]


def device_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": "000b82000001",
        "account_id": "a1",
        "vendor": "Grandstream",
        "model": "HT812",
        "transport": "snmp",
        "address": "127.0.0.1:1161",
    }
    row.update(overrides)
    return row


def rejected_reasons(path: Path, known_profiles: Collection[str] | None = None) -> list[str]:
    with pytest.raises(ImportRejected) as caught:
        parse_devices(path, known_profiles=known_profiles)
    return [str(e) for e in caught.value.errors]


def test_debug_until_needs_a_timezone_and_a_brief_window() -> None:
    with pytest.raises(ValidationError) as caught:
        Device.model_validate(device_row(debug_until="2026-11-27T12:00:00"))
    assert "debug_until must include a timezone, e.g. 2026-11-27T12:00:00Z" in describe(caught.value)
    with pytest.raises(ValidationError) as caught:
        Device.model_validate(device_row(debug_until=datetime.now(UTC) + timedelta(days=8)))
    assert "more than 7 days ahead" in describe(caught.value)
    soon = datetime.now(UTC) + timedelta(days=6)
    assert Device.model_validate(device_row(debug_until=soon)).debug_until == soon


def test_naive_debug_until_in_a_file_is_a_row_error(tmp_path: Path) -> None:
    text = HEADER.strip() + ",debug_until\n" + "000b82000001,a1,G,HT812,,snmp,h,,2026-11-27T12:00:00\n"
    assert rejected_reasons(write(tmp_path, "d.csv", text)) == [
        "line 2: debug_until: debug_until must include a timezone, e.g. 2026-11-27T12:00:00Z"
    ]


def test_mqtt_topic_used_twice_in_one_file_names_the_first_line(tmp_path: Path) -> None:
    text = (
        HEADER
        + "805ec0000001,a1,Yealink,T54W,,mqtt,hookflash/x,\n"
        + "805ec0000002,a1,Yealink,T54W,,mqtt,hookflash/y,\n"
        + "805ec0000003,a2,Yealink,T54W,,mqtt,hookflash/x,\n"
    )
    assert rejected_reasons(write(tmp_path, "d.csv", text)) == [
        "line 4: topic hookflash/x already used by device 805ec0000001 on line 2"
    ]


def test_csv_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text(HEADER + "000b82000001,a1,G,HT812,,snmp,h,\n", encoding="utf-8-sig")
    assert [d.id for d in parse_devices(path)] == ["000b82000001"]


@pytest.mark.parametrize("name", ["devices.csv", "devices.txt", "devices"])
def test_json_is_detected_by_content_not_only_by_suffix(tmp_path: Path, name: str) -> None:
    rows = [device_row(), device_row(id="000b82000002")]
    array = write(tmp_path, name, "\ufeff  " + json.dumps(rows, indent=1))
    assert [d.id for d in parse_devices(array)] == ["000b82000001", "000b82000002"]
    lines = write(tmp_path, "lines-" + name, "\n".join(json.dumps(r) for r in rows) + "\n")
    assert [d.id for d in parse_devices(lines)] == ["000b82000001", "000b82000002"]


def test_top_level_object_that_is_not_a_device_is_one_clear_error(tmp_path: Path) -> None:
    text = json.dumps({"devices": [device_row(), device_row(id="000b82000002")]}, indent=2)
    assert rejected_reasons(write(tmp_path, "d.json", text)) == [
        "line 1: expected a JSON array of device objects, or JSON Lines"
    ]


def test_truncated_json_array_is_an_error_naming_the_line(tmp_path: Path) -> None:
    text = "[\n" + json.dumps(device_row()) + ",\n" + json.dumps(device_row(id="000b82000002")) + "\n"
    assert rejected_reasons(write(tmp_path, "d.json", text)) == [
        "line 3: JSON array opened on line 1 is not closed: missing ']' at the end of the file"
    ]


def test_each_non_object_array_item_is_reported_once(tmp_path: Path) -> None:
    text = "[\n" + json.dumps(device_row()) + ',\n42,\n"x",\n[1, 2]\n]\n'
    assert rejected_reasons(write(tmp_path, "d.json", text)) == [
        "line 3: expected an object, got a number",
        "line 4: expected an object, got a string",
        "line 5: expected an object, got an array",
    ]


def test_unknown_profile_is_a_row_error_listing_the_known_ones(tmp_path: Path) -> None:
    text = (
        HEADER
        + "000b82000001,a1,G,HT812,grandstream-ht8xx,snmp,h,\n"
        + "000b82000002,a1,G,HT812,nope,snmp,h,\n"
    )
    path = write(tmp_path, "d.csv", text)
    assert len(parse_devices(path)) == 2  # without known_profiles, any name is accepted
    assert rejected_reasons(path, known_profiles=["generic", "grandstream-ht8xx"]) == [
        "line 3: profile: unknown profile 'nope'; known: generic, grandstream-ht8xx"
    ]


@pytest.mark.parametrize(
    ("mac", "reason"),
    [
        ("00:00:00:00:00:00", "all-zero"),
        ("ff:ff:ff:ff:ff:ff", "broadcast"),
        ("01:00:5e:00:00:01", "multicast"),
        ("0b:82:aa:bb:cc:dd", "multicast"),
    ],
)
def test_mac_that_cannot_be_a_device(mac: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_mac(mac)


def test_credentials_must_be_a_reference_and_the_value_is_never_echoed(tmp_path: Path) -> None:
    text = (
        HEADER
        + "000b82000001,a1,G,HT812,,snmp,h,s3cret pass!\n"
        + "000b82000002,a1,G,HT812,,snmp,h,snmp-v2.office\n"
    )
    with pytest.raises(ImportRejected) as caught:
        parse_devices(write(tmp_path, "d.csv", text))
    assert [str(e) for e in caught.value.errors] == [
        "line 2: credentials: credentials must be the name of a credential set in the config "
        "(letters, digits, '_', '.', '-'), not a secret"
    ]
    assert "s3cret" not in str(caught.value)
