"""`hookflash demo` end to end, as the README's first command runs it (shorter)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from collector.cli.demo import INACTIVE_ACCOUNT, REVOKED_ACCOUNT
from collector.sinks.sqlite import TelemetryQueries
from runner import hookflash


def test_demo_collects_both_transports_and_honours_lifecycle(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    run = hookflash("demo", "--devices", "16", "--duration", "10", "--period", "0.5", "--data-dir", data)
    assert run.returncode == 0, run.stderr
    assert f"{INACTIVE_ACCOUNT} set inactive" in run.stdout and f"{REVOKED_ACCOUNT} set revoked" in run.stdout

    rows = [
        json.loads(line)
        for line in hookflash("query", "--format", "json", "--data-dir", data).stdout.splitlines()
    ]
    assert rows
    for row in rows:
        assert {
            "device_id",
            "account_id",
            "kind",
            "observed_at",
            "retention_class",
            "source",
            "fields",
        } <= set(row)
        assert row["retention_class"] and row["fields"]
    seen = {(r["kind"], r["source"]) for r in rows}
    for kind in ("firmware", "registration", "performance"):
        assert (kind, "snmp") in seen and (kind, "mqtt") in seen, kind
    assert {("config", "snmp"), ("signal", "mqtt"), ("call_quality", "mqtt"), ("call_quality", "sip")} <= seen

    accounts = {
        a["id"]: a
        for a in map(
            json.loads,
            hookflash("accounts", "list", "--format", "json", "--data-dir", data).stdout.splitlines(),
        )
    }
    assert accounts[INACTIVE_ACCOUNT]["status"] == "inactive"
    assert accounts[REVOKED_ACCOUNT]["status"] == "revoked"
    changed = datetime.fromisoformat(accounts[INACTIVE_ACCOUNT]["status_changed_at"])
    inactive_rows = [r for r in rows if r["account_id"] == INACTIVE_ACCOUNT]
    assert inactive_rows, "inactive: data collected before the change stays"
    assert all(datetime.fromisoformat(r["observed_at"]) < changed for r in inactive_rows)

    revoked_devices = {
        d["id"]
        for d in map(
            json.loads,
            hookflash(
                "devices", "list", "--account", REVOKED_ACCOUNT, "--format", "json", "--data-dir", data
            ).stdout.splitlines(),
        )
    }
    assert revoked_devices
    dump = TelemetryQueries.open(data / "telemetry.db").text_dump()
    assert REVOKED_ACCOUNT not in dump
    assert not any(dev in dump for dev in revoked_devices)
    # One revoked account alone is never kept as aggregates (k = 10 accounts per bucket)
    assert TelemetryQueries.open(data / "telemetry.db").aggregates() == []
    assert "quarantined" in run.stdout


def test_demo_refuses_a_data_dir_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "registry.db").write_text("precious")
    run = hookflash("demo", "--duration", "2", "--data-dir", tmp_path)
    assert run.returncode == 2
    assert "holds data that a demo did not create" in run.stderr
    assert (tmp_path / "registry.db").read_text() == "precious"
