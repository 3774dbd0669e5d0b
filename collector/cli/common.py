"""Options and helpers every command shares."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from collector.service import registry_path, store_path
from collector.sinks.sqlite_store import SqliteStore
from provisioning.registry import Registry

F = TypeVar("F", bound=Callable[..., Any])
# Piped output (scripts, CI, `| less`) is not wrapped at 80 columns.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 200)


def data_dir_option(func: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("hookflash-data"),
        show_default=True,
        envvar="HOOKFLASH_DATA_DIR",
        help="Folder holding registry.db and telemetry.db.",
    )(func)


def format_option(func: F) -> F:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="table for people, json for one JSON object per line.",
    )(func)


def open_registry(data_dir: Path) -> Registry:
    return Registry(registry_path(data_dir))


def open_store(data_dir: Path) -> SqliteStore:
    return SqliteStore(store_path(data_dir))


def emit(rows: Iterable[dict[str, Any]], fmt: str, columns: list[str], title: str = "") -> None:
    """Print rows as JSON lines or as a table of the given columns."""
    if fmt == "json":
        for row in rows:
            click.echo(json.dumps(row, default=str, sort_keys=True))
        return
    table = Table(title=title or None)
    for column in columns:
        table.add_column(column)
    count = 0
    for row in rows:
        count += 1
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)
    console.print(f"{count} row(s)")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def fail_cleanly(func: F) -> F:
    """Turn expected errors into one clear line and exit status 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from collector.config import ConfigError
        from collector.profiles import ProfileError
        from collector.retention import PolicyError

        try:
            return func(*args, **kwargs)
        except (ConfigError, ProfileError, PolicyError, LookupError, ValueError) as exc:
            err_console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]
