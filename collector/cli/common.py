"""Options and helpers every command shares."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from collector.cli.backend import BACKEND
from collector.core.errors import HookflashError
from collector.runtime.paths import registry_of, registry_path, store_path
from collector.sinks.sqlite import EmbeddedStore
from provisioning.database import DatabaseUnavailable
from provisioning.db import SchemaTooNew
from provisioning.receipts import ReceiptBook
from provisioning.registry import Registry

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])


class _LazyConsole:
    """A rich Console made at its first use: a command that prints plain lines (a billing
    script's `accounts revoke`) does not pay for importing rich (`bench/cli_start.py`).

    Piped output (scripts, CI, `| less`) is not wrapped at 80 columns. Much of what is
    printed comes from users (device files, account ids, paths), so rich never interprets
    it: no markup (`[/red]` in a CSV cell), no emoji codes (`0:b:82:aa:bb:2`), no
    highlighting. Styling is applied explicitly with rich.text.Text."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self._stderr else sys.stdout
            self._console = Console(
                stderr=self._stderr,
                soft_wrap=True,
                width=None if stream.isatty() else 200,
                markup=False,
                emoji=False,
                highlight=False,
            )
        return getattr(self._console, name)


console: Console = _LazyConsole(stderr=False)  # type: ignore[assignment]
err_console: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]


def print_error(message: str) -> None:
    """`error: message` on stderr; the message is shown as is, never parsed as markup."""
    click.echo(f"{click.style('error:', fg='red')} {message}", err=True)


def data_dir_option(func: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("hookflash-data"),
        show_default=True,
        envvar="HOOKFLASH_DATA_DIR",
        help="Folder holding registry.db and telemetry.db.",
    )(func)


def config_option(help: str, *, required: bool = False) -> Callable[[F], F]:
    """`-c/--config FILE`: a service config (TOML), passed to the command as `config_path`."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        required=required,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=help,
    )


def format_option(func: F) -> F:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="table for people, json for one JSON object per line.",
    )(func)


def check_data_dir(data_dir: Path) -> None:
    """A data dir that exists must be a folder (not a regular file)."""
    if data_dir.exists() and not data_dir.is_dir():
        raise ValueError(f"data dir {data_dir} is not a folder")


def require_data(data_dir: Path) -> None:
    """For commands that only read: a mistyped --data-dir must not silently create an empty store."""
    check_data_dir(data_dir)
    if BACKEND.for_data_dir(data_dir).url is None and not registry_path(data_dir).is_file():
        raise ValueError(
            f"no hookflash data in {data_dir} (registry.db not found); "
            'run "hookflash devices import FILE" or "hookflash demo" first'
        )


def _check(data_dir: Path, existing: bool) -> None:
    if existing:
        require_data(data_dir)
    else:
        check_data_dir(data_dir)


def _database_error(path: Path, exc: sqlite3.DatabaseError) -> ValueError:
    """What is wrong with a database file, as the user can act on it: permissions, a
    read-only file system, or a file that is not (or no longer) a database."""
    text = str(exc)
    folder = path.parent
    if not os.access(folder, os.R_OK | os.X_OK) or (path.exists() and not os.access(path, os.R_OK)):
        return ValueError(f"{path}: permission denied: this user cannot read it ({text})")
    writable = os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))
    if "readonly" in text or not writable:
        return ValueError(
            f"{path}: read-only for this user or on a read-only file system; hookflash writes to its "
            f"data dir, even to read it (the database's write-ahead log) ({text})"
        )
    if "not a database" in text or "malformed" in text:
        return ValueError(f"{path}: cannot open the database: not a hookflash database, or damaged ({text})")
    return ValueError(f"{path}: cannot open the database: {text}")


T = TypeVar("T")


def _open(data_dir: Path, existing: bool, path: Path, factory: Callable[[Path], T]) -> T:
    _check(data_dir, existing)
    try:
        return factory(path)
    except sqlite3.DatabaseError as exc:
        raise _database_error(path, exc) from None


def open_registry(data_dir: Path, *, existing: bool = False) -> Registry:
    """The registry in data_dir (or in the PostgreSQL database of `BACKEND`); with
    `existing`, fail unless data_dir holds one already."""
    return _open(data_dir, existing, registry_path(data_dir), _registry_of(data_dir))


def _registry_of(data_dir: Path) -> Callable[[Path], Registry]:
    backend = BACKEND.for_data_dir(data_dir)
    return lambda _path: registry_of(data_dir, backend.url, backend.password_env)


def open_store(data_dir: Path, *, existing: bool = False) -> EmbeddedStore:
    """The telemetry store in data_dir; with `existing`, fail unless data_dir holds a registry."""
    return _open(data_dir, existing, store_path(data_dir), EmbeddedStore.open)


def open_receipts(data_dir: Path, *, existing: bool = False) -> ReceiptBook:
    return ReceiptBook.of(open_registry(data_dir, existing=existing))


def emit(rows: Iterable[dict[str, Any]], fmt: str, columns: list[str], title: str = "") -> None:
    """Print rows as JSON lines or as a table of the given columns."""
    if fmt == "json":
        for row in rows:
            click.echo(json.dumps(row, default=str, sort_keys=True))
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title) if title else None)
    for column in columns:
        table.add_column(Text(column))
    count = 0
    for row in rows:
        count += 1
        table.add_row(*(Text(_cell(row.get(c))) for c in columns))
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
        try:
            return func(*args, **kwargs)
        except BrokenPipeError:
            quiet_on_closed_pipe()
        except (HookflashError, SchemaTooNew, LookupError, ValueError, DatabaseUnavailable) as exc:
            message = str(exc)
        except sqlite3.DatabaseError as exc:
            message = describe_database_error(exc)
        except OSError as exc:
            message = describe_os_error(exc)
        except Exception as exc:
            if not _is_postgres_error(exc):
                raise
            message = f"database error: {str(exc).strip()}"
        print_error(message)
        raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]


def _is_postgres_error(exc: Exception) -> bool:
    psycopg = sys.modules.get("psycopg")  # imported only where a database_url is used
    return psycopg is not None and isinstance(exc, psycopg.Error)


def describe_database_error(exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if "readonly" in text:
        return (
            f"the data dir is read-only: a read-only file system, or this user may not write there ({text})"
        )
    if "unable to open" in text:
        return f"cannot open a database in the data dir: does it exist, may this user read it? ({text})"
    return f"database error: {text}"


def quiet_on_closed_pipe() -> NoReturn:
    """The reader went away (`hookflash query | head -1`): what it wanted was printed, so end
    quietly and successfully. Standard output is pointed at /dev/null first, so that the
    interpreter's last flush at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(0)


def describe_os_error(exc: OSError) -> str:
    """`path: reason` rather than `[Errno 21] Is a directory: 'path'`."""
    if exc.filename is None or not exc.strerror:
        return str(exc)
    where = str(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    return f"{where}: {exc.strerror}"
