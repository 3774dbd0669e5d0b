"""`hookflash influx ensure-buckets`: one bucket per retention class, with the class's
retention, on the InfluxDB 2 server of the config."""

from __future__ import annotations

from pathlib import Path

import click
from influxdb_client.client.influxdb_client import InfluxDBClient

from collector.cli.common import config_option, emit, err_console, fail_cleanly, format_option, print_error
from collector.config import load_config
from collector.retention import load_policy
from collector.sinks.influx.buckets import BucketAdmin, BucketError, ensure_buckets

COLUMNS = ["class", "bucket", "policy", "server", "action"]


@click.group()
def influx() -> None:
    """InfluxDB v2: the buckets the sink writes to."""


@influx.command("ensure-buckets")
@config_option("TOML config file (its [influx] section and retention policy).", required=True)
@click.option("--dry-run", is_flag=True, help="Only report: create and change nothing.")
@click.option("--fix", is_flag=True, help="Also set the policy's retention on buckets that differ from it.")
@format_option
@fail_cleanly
def ensure_buckets_cmd(config_path: Path, dry_run: bool, fix: bool, fmt: str) -> None:
    """Create the missing bucket of each retention class, with the class's retention as its
    expiry rule ("while-active" classes: infinite), and report buckets whose retention
    differs from the policy (drift), changed only with --fix.

    Exit status: 0 when every bucket matches the policy, 1 when some are missing (with
    --dry-run) or differ (without --fix), 2 on an error (server unreachable, 401, no such
    org, bad config)."""
    config = load_config(config_path)
    policy = load_policy(config.retention_policy)
    names = config.influx.bucket_names(list(policy.classes), policy.origin)
    influx_config = config.influx
    token = influx_config.token()
    client = InfluxDBClient(
        url=influx_config.url, token=token, org=influx_config.org, timeout=int(influx_config.timeout_s * 1000)
    )
    try:
        admin = BucketAdmin(client, influx_config.url, token)
        checks = ensure_buckets(admin, influx_config.org, policy.classes, names, dry_run=dry_run, fix=fix)
    except BucketError as exc:
        print_error(str(exc))
        raise SystemExit(2) from None
    finally:
        client.close()  # type: ignore[no-untyped-call]
    title = f"buckets of org {influx_config.org} at {influx_config.url}" + (" (dry run)" if dry_run else "")
    emit((c.row() for c in checks), fmt, COLUMNS, title)
    unresolved = [c for c in checks if c.unresolved]
    if unresolved:
        missing = [c.bucket for c in unresolved if c.action == "missing"]
        drifted = [c.bucket for c in unresolved if c.action == "drift"]
        if missing:
            err_console.print(f"{len(missing)} bucket(s) missing: {', '.join(missing)}")
        if drifted:
            err_console.print(
                f"{len(drifted)} bucket(s) differ from the retention policy: {', '.join(drifted)}; "
                "--fix sets the policy's retention on them"
            )
        raise SystemExit(1)
