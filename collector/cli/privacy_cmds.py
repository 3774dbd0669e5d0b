"""`hookflash privacy export` and `hookflash receipts`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from collector.cli.common import (
    console,
    data_dir_option,
    emit,
    fail_cleanly,
    format_option,
    open_receipts,
    open_registry,
    open_store,
)
from collector.runtime.export import export_account


@click.group()
def privacy() -> None:
    """Data subject rights (P6): export what is held about an account."""


@privacy.command("export")
@click.argument("account_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (default: standard output).",
)
@data_dir_option
@fail_cleanly
def export(account_id: str, output: Path | None, data_dir: Path) -> None:
    """Everything held about ACCOUNT_ID as JSON: registry rows, telemetry, audit, receipts."""
    registry = open_registry(data_dir, existing=True)
    document = export_account(registry, [open_store(data_dir).queries], account_id)
    text = json.dumps(document, indent=2, sort_keys=True, default=str)
    if output is None:
        click.echo(text)
        return
    output.write_text(text + "\n", encoding="utf-8")
    console.print(
        f"wrote {output}: {len(document['devices'])} device(s), "
        f"{len(document['telemetry'])} record(s), {len(document['audit'])} audit entries"
    )


@click.group()
def receipts() -> None:
    """Receipts of deactivation requests."""


@receipts.command("show")
@click.argument("receipt_id")
@data_dir_option
@fail_cleanly
def show(receipt_id: str, data_dir: Path) -> None:
    """Print one receipt as JSON."""
    receipt = open_receipts(data_dir, existing=True).get(receipt_id)
    click.echo(json.dumps(receipt.model_dump(mode="json"), indent=2, sort_keys=True))


@receipts.command("list")
@click.option("--account", required=True)
@data_dir_option
@format_option
@fail_cleanly
def list_receipts(account: str, data_dir: Path, fmt: str) -> None:
    """List an account's receipts."""
    rows = [r.model_dump(mode="json") for r in open_receipts(data_dir, existing=True).for_account(account)]
    emit(rows, fmt, ["id", "action", "status", "requested_at", "completed_at", "reason"])
