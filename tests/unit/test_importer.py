"""Device import: every bad row reported with its line, and nothing imported when any is bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioning.importer import ImportRejected, parse_devices
from provisioning.models import Transport
from provisioning.registry import Registry

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
