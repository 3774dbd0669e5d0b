"""`hookflash devices …` and `hookflash accounts …`: the provisioning registry."""

from __future__ import annotations

from pathlib import Path

import click

from collector.cli.common import (
    console,
    data_dir_option,
    emit,
    err_console,
    fail_cleanly,
    format_option,
    open_registry,
    open_store,
)
from collector.lifecycle import end_account
from collector.retention import load_policy
from provisioning.importer import ImportRejected, parse_devices
from provisioning.models import AccountStatus


@click.group()
def devices() -> None:
    """Provisioned devices (P1: only these are ever collected from)."""


@devices.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@data_dir_option
def import_devices(file: Path, data_dir: Path) -> None:
    """Import devices from CSV or JSON; any bad row rejects the whole file."""
    try:
        parsed = parse_devices(file)
    except ImportRejected as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise SystemExit(2) from None
    registry = open_registry(data_dir)
    count = registry.import_devices(parsed, source=str(file))
    console.print(f"imported {count} device(s) from {file}")


@devices.command("list")
@click.option("--account", help="Only this account's devices.")
@data_dir_option
@format_option
def list_devices(account: str | None, data_dir: Path, fmt: str) -> None:
    """List provisioned devices (credential references only, never secrets)."""
    rows = [d.model_dump(mode="json") for d in open_registry(data_dir).devices(account)]
    emit(
        rows,
        fmt,
        ["id", "account_id", "vendor", "model", "profile", "transport", "address", "credentials"],
    )


@devices.command("remove")
@click.argument("device_id")
@data_dir_option
@fail_cleanly
def remove_device(device_id: str, data_dir: Path) -> None:
    """Remove a device from the registry; collection from it stops."""
    from provisioning.models import normalize_mac

    open_registry(data_dir).remove_device(normalize_mac(device_id))
    console.print(f"removed {device_id}")


@click.group()
def accounts() -> None:
    """Customer accounts and their lifecycle (P3, P4)."""


@accounts.command("list")
@data_dir_option
@format_option
def list_accounts(data_dir: Path, fmt: str) -> None:
    """List accounts with their status and when it last changed."""
    rows = [a.model_dump(mode="json") for a in open_registry(data_dir).accounts()]
    emit(rows, fmt, ["id", "status", "status_changed_at"])


@accounts.command("set-status")
@click.argument("account_id")
@click.argument("status", type=click.Choice([s.value for s in AccountStatus]))
@click.option("--reason", default="", help="Recorded in the audit log.")
@data_dir_option
@fail_cleanly
def set_status(account_id: str, status: str, reason: str, data_dir: Path) -> None:
    """Change an account's status. inactive/revoked stop collection at once; revoked also
    erases or anonymizes the account's data per the retention policy."""
    registry = open_registry(data_dir)
    event = registry.set_status(account_id, AccountStatus(status), reason)
    if event is None:
        console.print(f"account {account_id} is already {status}")
        return
    console.print(f"account {account_id}: {event.type.value} at {event.at.isoformat()}")
    if event.type.value == "AccountRevoked":
        store = open_store(data_dir)
        counts = end_account(registry, [store], load_policy(), account_id, reason or "revoked")
        for sink, per_class in counts.items():
            summary = ", ".join(f"{cls}: {n}" for cls, n in per_class.items())
            console.print(f"  {sink}: ended {summary}")
