"""`hookflash query`, `hookflash quarantine`, `hookflash audit`, `hookflash sweep`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from collector.cli.common import (
    config_option,
    console,
    data_dir_option,
    emit,
    fail_cleanly,
    format_option,
    open_registry,
    open_store,
)
from collector.core.records import Kind
from collector.retention import load_policy
from collector.runtime.sweeper import RetentionSweeper
from provisioning.models import normalize_mac


@click.command()
@click.option("--device", help="Device id (MAC, any common notation).")
@click.option("--account", help="Account id.")
@click.option("--kind", type=click.Choice([k.value for k in Kind]), help="Record kind.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many records.")
@data_dir_option
@format_option
@fail_cleanly
def query(
    device: str | None,
    account: str | None,
    kind: str | None,
    limit: int | None,
    data_dir: Path,
    fmt: str,
) -> None:
    """Print stored telemetry records, oldest first."""
    store = open_store(data_dir, existing=True)
    records = store.queries.query(
        device_id=normalize_mac(device) if device else None,
        account_id=account,
        kind=kind,
        limit=limit,
    )
    rows: list[dict[str, Any]] = []
    for record in records:
        row = record.model_dump(mode="json")
        if fmt == "table":
            row["fields"] = json.dumps(record.fields, separators=(",", ":"))[:80]
        rows.append(row)
    emit(
        rows,
        fmt,
        ["observed_at", "device_id", "account_id", "kind", "retention_class", "source", "fields"],
    )


@click.command()
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@data_dir_option
@format_option
@fail_cleanly
def quarantine(limit: int, data_dir: Path, fmt: str) -> None:
    """Show quarantined payloads (newest first): reason, topic, size, first bytes."""
    rows = [vars(q) for q in open_store(data_dir, existing=True).queries.quarantined(limit)]
    emit(rows, fmt, ["at", "topic", "size", "reason", "head"])


@click.command()
@click.option("--account", help="Only this account's entries.")
@data_dir_option
@format_option
@fail_cleanly
def audit(account: str | None, data_dir: Path, fmt: str) -> None:
    """The append-only audit log: lifecycle changes, imports, erasures, sweeps."""
    emit(
        open_registry(data_dir, existing=True).audit_entries(account),
        fmt,
        ["at", "account_id", "device_id", "action", "detail"],
    )


@click.command()
@click.option(
    "--policy",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Retention policy TOML (default: the bundled one).",
)
@config_option(
    "Service config: its retention policy, and its webhooks (with none, notices for all webhooks"
    " reach nobody, so their accounts can be forgotten)."
)
@data_dir_option
@fail_cleanly
def sweep(policy: Path | None, config_path: Path | None, data_dir: Path) -> None:
    """Run the retention sweeper once now."""
    registry = open_registry(data_dir, existing=True)
    webhooks = None
    if config_path is not None:
        from collector.config import load_config  # imported here: only with a config

        config = load_config(config_path)
        policy = policy or config.retention_policy
        webhooks = [w.name for w in config.webhooks]
    sweeper = RetentionSweeper(load_policy(policy), open_store(data_dir), registry, webhooks=webhooks)
    counts = sweeper.sweep()
    for name, count in sorted(counts.items()):
        console.print(f"{name}: {count} record(s) ended")
