"""Rollout status on a scripted fleet (tests/rollout_fleet.py): every number of the report,
from the views and from `hookflash rollout status --format json`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.views.db import ViewsDb
from collector.views.rollout import _classify, _Device, rollout_status
from rollout_fleet import (
    EXPECTED_STATES,
    ID,
    MODEL,
    NAMES,
    OLD,
    TARGET,
    Times,
    check_report,
    write_fleet,
)
from runner import hookflash

T = Times(base=datetime(2026, 11, 1, tzinfo=UTC))
NAME_OF = {device_id: name for name, device_id in ID.items()}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rollout")
    write_fleet(path, T)
    return path


def views(data_dir: Path) -> ViewsDb:
    return ViewsDb(data_dir / "telemetry.db", data_dir / "registry.db")


def test_rollout_report_numbers_are_exact(data_dir: Path) -> None:
    rollout = rollout_status(views(data_dir), MODEL, TARGET)
    check_report(rollout.report.model_dump(mode="json"), T)
    states = {NAME_OF[d.device_id]: d.state for d in rollout.devices}
    assert states == EXPECTED_STATES
    by_name = {NAME_OF[d.device_id]: d for d in rollout.devices}
    assert by_name["U3"].upgraded_at == T.r(2) and by_name["U3"].version == TARGET
    assert by_name["RB1"].reboots_after_upgrade == 3 and by_name["U1"].reboots_after_upgrade == 0
    assert by_name["S3"].last_seen is None and by_name["S1"].last_seen == T.base + timedelta(hours=1)
    total, page = rollout.page("on_target", limit=2, offset=1)
    assert total == 4 and [NAME_OF[d.device_id] for d in page] == ["U2", "U3"]
    assert sorted(NAME_OF.values()) == sorted([*NAMES, "X1", "I1"])


def test_cli_rollout_status_json(data_dir: Path) -> None:
    run = hookflash(
        "rollout", "status", "--model", MODEL, "--target", TARGET, "--format", "json", "--data-dir", data_dir
    )
    assert run.returncode == 0, run.stderr
    check_report(json.loads(run.stdout), T)


def test_cli_rollout_status_table(data_dir: Path) -> None:
    run = hookflash("rollout", "status", "--model", MODEL, "--target", TARGET, "--data-dir", data_dir)
    assert run.returncode == 0, run.stderr
    assert f"rollout of {TARGET} to {MODEL}: 13 devices, began {T.rollout.isoformat()}" in run.stdout
    assert "progress 38.5%" in run.stdout
    assert "mos -0.6, loss_pct +1.4, jitter_ms +23, registration_rate -0.5" in run.stdout
    assert f"regressed  {ID['RG1']}" in run.stdout


def test_since_moves_the_start(data_dir: Path) -> None:
    """With --since R+6h only F2 was seen since (pending: within the 24 h grace); F1 and P1,
    last seen at R+2h and R+1h, become stragglers."""
    since = T.r(6)
    report = rollout_status(views(data_dir), MODEL, TARGET, since=since).report
    assert report.began == since and report.began_from == "since"
    assert report.counts == {
        "on_target": 4,
        "ahead": 1,
        "pending": 1,
        "failed": 0,
        "regressed": 2,
        "straggler": 5,
    }
    assert report.cohorts["not_upgraded"].calls == 0  # F2 reported no call quality after R+6h


def test_grace_and_reboot_limit_are_options(data_dir: Path) -> None:
    report = rollout_status(views(data_dir), MODEL, TARGET, grace_s=48 * 3600, reboot_limit=4).report
    assert report.counts["failed"] == 1 and report.counts["pending"] == 2  # F2 is pending again
    assert report.counts["regressed"] == 1 and report.counts["on_target"] == 5  # RB1 stays on target


def test_a_target_nobody_reports_yet(data_dir: Path) -> None:
    report = rollout_status(views(data_dir), MODEL, "2.0.0.1").report
    assert report.began is None and report.began_from is None
    assert report.counts == {
        "on_target": 0,
        "ahead": 0,
        "pending": 12,
        "failed": 0,
        "regressed": 0,
        "straggler": 1,
    }


def test_unknown_model_is_a_clear_error(data_dir: Path) -> None:
    run = hookflash("rollout", "status", "--model", "HT999", "--target", TARGET, "--data-dir", data_dir)
    assert run.returncode == 2
    assert "no device of model 'HT999' in an active account; models: HT802, HT812" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday': not an ISO time"),
        (["--since", "2026-11-01T00:00:00"], "give a timezone"),
        (["--grace", "soon"], "--grace: bad duration 'soon'"),
        (["--window", "0h"], "--window 0h: must be longer than 0 seconds"),
    ],
)
def test_bad_options_are_named(data_dir: Path, args: list[str], message: str) -> None:
    run = hookflash("rollout", "status", "--model", MODEL, "--target", TARGET, *args, "--data-dir", data_dir)
    assert run.returncode == 2 and message in run.stderr, run.stderr


def test_a_device_first_seen_after_the_start_on_the_old_version_is_pending() -> None:
    """Its first firmware report is not a change of version (seen in the demo, where every
    device's first report comes right after the first upgrade)."""
    began = T.rollout.timestamp()
    device = _Device("000b82000999", "acct-0", OLD, began + 60, versions=[(began + 60, OLD)])
    assert _classify(device, TARGET, began, 86400, 3) == ("pending", "", 0)
    device.versions.append((began + 120, "1.0.45.1"))
    state, reason, _ = _classify(device, TARGET, began, 86400, 3)
    assert (state, reason) == ("failed", f"changed to 1.0.45.1 instead of {TARGET}")
