"""`hookflash devices …` and `hookflash accounts …`: the provisioning registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from collector.cli.common import (
    config_option,
    console,
    data_dir_option,
    emit,
    fail_cleanly,
    format_option,
    open_registry,
)
from collector.cli.lifecycle_cmds import reactivate, remove_device, revoke, set_status, suspend
from collector.retention import parse_duration
from provisioning.models import MAX_DEBUG_WINDOW, normalize_mac


@click.group()
def devices() -> None:
    """Provisioned devices (P1: only these are ever collected from)."""


@devices.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option("Service config: profiles in its profile_dirs are accepted besides the bundled ones.")
@data_dir_option
@fail_cleanly
def import_devices(file: Path, config_path: Path | None, data_dir: Path) -> None:
    """Import devices from CSV or JSON; any bad row rejects the whole file."""
    # Imported here, not for every `hookflash accounts …` (bench/cli_start.py).
    from collector.profiles import load_profiles
    from provisioning.importer import parse_devices

    profile_dirs = []
    if config_path:
        from collector.config import load_config  # the service's config models, only when asked for

        profile_dirs = load_config(config_path).profile_dirs
    parsed = parse_devices(file, known_profiles=load_profiles(profile_dirs).names)
    registry = open_registry(data_dir)
    count = registry.import_devices(parsed, source=str(file))
    console.print(f"imported {count} device(s) from {file}")


@devices.command("list")
@click.option("--account", help="Only this account's devices.")
@data_dir_option
@format_option
@fail_cleanly
def list_devices(account: str | None, data_dir: Path, fmt: str) -> None:
    """List provisioned devices (credential references only, never secrets)."""
    rows = [d.model_dump(mode="json") for d in open_registry(data_dir, existing=True).devices(account)]
    emit(
        rows,
        fmt,
        ["id", "account_id", "vendor", "model", "profile", "transport", "address", "credentials"],
    )


@devices.command("debug")
@click.argument("device_id")
@click.option(
    "--for",
    "duration",
    default="2h",
    show_default=True,
    help="How long the troubleshooting window stays open (e.g. 30m, 2h; at most 7d).",
)
@click.option("--close", is_flag=True, help="Close the device's window now.")
@data_dir_option
@fail_cleanly
def debug_window(device_id: str, duration: str, close: bool, data_dir: Path) -> None:
    """Open a troubleshooting window (P8): diagnostic data is requested and stored only inside it."""
    until = None if close else datetime.now(UTC) + debug_window_length(duration)
    open_registry(data_dir, existing=True).set_debug_window(normalize_mac(device_id), until)
    if until is None:
        console.print(f"troubleshooting window of {device_id} closed")
    else:
        console.print(
            f"troubleshooting window of {device_id} open until {until.isoformat(timespec='seconds')}"
        )


def debug_window_length(text: str) -> timedelta:
    """The --for duration: positive and at most 7 days (P8: troubleshooting windows are brief)."""
    length = parse_duration(text)
    if length <= timedelta(0):
        raise ValueError(f"--for {text}: a troubleshooting window must last longer than 0 seconds")
    if length > MAX_DEBUG_WINDOW:
        raise ValueError(
            f"--for {text}: troubleshooting windows last at most 7 days (P8: kept briefly); "
            "open a new one later if needed"
        )
    return length


@click.group()
def accounts() -> None:
    """Customer accounts and their lifecycle (P3, P4)."""


@accounts.command("list")
@data_dir_option
@format_option
@fail_cleanly
def list_accounts(data_dir: Path, fmt: str) -> None:
    """List accounts with their status and when it last changed."""
    rows = [a.model_dump(mode="json") for a in open_registry(data_dir, existing=True).accounts()]
    emit(rows, fmt, ["id", "status", "status_changed_at"])


for _command in (suspend, revoke, reactivate, set_status):
    accounts.add_command(_command)
devices.add_command(remove_device)
