"""`hookflash rollout status`: how far a firmware rollout has got, and what it did to calls."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from collector.cli.common import (
    console,
    data_dir_option,
    fail_cleanly,
    format_option,
    open_registry,
    open_store,
)
from collector.retention.policy import parse_duration
from collector.runtime.paths import store_path
from collector.views.db import ViewsDb
from collector.views.rollout import LISTED, STATES, RolloutReport, rollout_status


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: not an ISO time, e.g. 2026-11-27T08:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"--since {text!r}: give a timezone, e.g. 2026-11-27T08:00:00Z")
    return moment


def _seconds(option: str, text: str) -> float:
    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None
    if seconds <= 0:
        raise ValueError(f"{option} {text}: must be longer than 0 seconds")
    return seconds


@click.group()
def rollout() -> None:
    """Firmware rollouts: progress, failures, regressions, call quality before and after."""


@rollout.command("status")
@click.option("--model", required=True, help="Device model, as in the registry (e.g. HT812).")
@click.option("--target", required=True, help="The firmware version being rolled out.")
@click.option("--since", help="When the rollout began (ISO time); default: the first report of the target.")
@click.option(
    "--grace", default="24h", show_default=True, help="Not upgraded this long after the start: failed."
)
@click.option("--window", default="24h", show_default=True, help="Cohort window before/after each upgrade.")
@click.option(
    "--reboots",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Reboots after upgrading that make a device regressed.",
)
@click.option(
    "--list",
    "list_limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Regressed, failed and straggler devices listed (each).",
)
@data_dir_option
@format_option
@fail_cleanly
def status(
    model: str,
    target: str,
    since: str | None,
    grace: str,
    window: str,
    reboots: int,
    list_limit: int,
    data_dir: Path,
    fmt: str,
) -> None:
    """Where each device of MODEL stands against TARGET, and per-cohort call quality.

    States: on_target, ahead (newer), pending, failed, regressed (went back to an older
    version, or rebooted --reboots times after upgrading) and straggler (not seen since
    the rollout began). See the README for the exact definitions."""
    open_store(data_dir, existing=True).close()  # creates the views' index on an old store
    registry = open_registry(data_dir, existing=True)  # registry.db, or the PostgreSQL registry
    db = ViewsDb(store_path(data_dir), registry.db)
    try:
        report = rollout_status(
            db,
            model,
            target,
            since=_since(since),
            grace_s=_seconds("--grace", grace),
            window_s=_seconds("--window", window),
            reboot_limit=reboots,
            list_limit=list_limit,
        ).report
    finally:
        db.close()
        registry.close()
    if fmt == "json":
        click.echo(json.dumps(report.model_dump(mode="json"), sort_keys=True))
    else:
        print_report(report)


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(report: RolloutReport) -> None:
    began = report.began.isoformat() if report.began else "not yet (no device reports the target)"
    console.print(f"rollout of {report.target} to {report.model}: {report.devices} devices, began {began}")
    counts = Table(title=Text(f"progress {report.progress_pct:.1f}%"))
    for state in STATES:
        counts.add_column(Text(state))
    counts.add_row(*(Text(str(report.counts[s])) for s in STATES))
    console.print(counts)
    cohorts = Table(title=Text("call quality and registration, per cohort"))
    for column in ("cohort", "devices", "calls", "MOS", "loss %", "jitter ms", "reg. samples", "reg. rate"):
        cohorts.add_column(Text(column))
    for name, c in report.cohorts.items():
        cohorts.add_row(
            *map(
                Text,
                (
                    name,
                    str(c.devices),
                    str(c.calls),
                    _num(c.mos, 3),
                    _num(c.loss_pct, 3),
                    _num(c.jitter_ms, 3),
                    str(c.registration_samples),
                    _num(c.registration_rate, 4),
                ),
            )
        )
    delta = ", ".join(f"{k} {'-' if v is None else f'{v:+g}'}" for k, v in report.delta.items())
    cohorts.caption = Text(f"after - before: {delta}")
    console.print(cohorts)
    for state in LISTED:
        for d in report.listed[state]:
            console.print(
                Text(f"{state:10s} {d.device_id} {d.account_id:12s} {d.version or '-':12s} {d.reason}")
            )
