"""`hookflash db status|migrate|copy`: the schema version of each database hookflash keeps,
and moving a data dir's registry into PostgreSQL.

The data dir's SQLite files (registry.db, telemetry.db, alerts.db) and, with a database
URL (`hookflash --database-url`, HOOKFLASH_DATABASE_URL, or a -c config's database_url),
the registry's tables in PostgreSQL. Every one is also migrated when the service or a
command opens it; `migrate` does it now (e.g. before a release is rolled out to the
hosts that share the database).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from collector.alerts.state import ALERTS
from collector.cli.backend import BACKEND
from collector.cli.common import config_option, data_dir_option, emit, fail_cleanly, format_option
from collector.runtime.paths import alerts_path, location_path, note_location, registry_path, store_path
from collector.sinks.sqlite.schema import TELEMETRY
from provisioning.database_url import DEFAULT_PASSWORD_ENV
from provisioning.db import Schema, open_db
from provisioning.schema import REGISTRY, REGISTRY_PG

NEEDS_ACTION = 1  # `db status`: a schema older (migrate) or newer (upgrade hookflash) than this release


@dataclass(frozen=True)
class Place:
    where: str
    schema: Schema
    path: Path | None = None  # a data dir file; None: the PostgreSQL database


def _places(data_dir: Path) -> Iterator[Place]:
    url = BACKEND.for_data_dir(data_dir).url
    if url is None:
        yield Place(str(registry_path(data_dir)), REGISTRY, registry_path(data_dir))
    else:
        from provisioning.postgres import describe_url, parse_url

        yield Place(describe_url(parse_url(url)), REGISTRY_PG)
    yield Place(str(store_path(data_dir)), TELEMETRY, store_path(data_dir))
    yield Place(str(alerts_path(data_dir)), ALERTS, alerts_path(data_dir))


def _version(place: Place) -> int | None:
    """The stored version; None where there is nothing yet."""
    if place.path is not None:
        if not place.path.is_file():
            return None
        db = sqlite3.connect(f"file:{place.path}?mode=ro", uri=True)
        try:
            return int(db.execute("PRAGMA user_version").fetchone()[0])
        finally:
            db.close()
    from provisioning.postgres import PostgresDatabase

    database = PostgresDatabase(
        BACKEND.url or "", place.schema, password_env=BACKEND.password_env or "", migrate=False, check=False
    )
    try:
        return database.version() or None
    finally:
        database.close()


def _state(found: int | None, supported: int) -> str:
    if found is None:
        return "none yet (made at first use)"
    if found == supported:
        return "current"
    if found < supported:
        return "older: run `hookflash db migrate` (or start the service)"
    return "NEWER than this release: upgrade hookflash"


def _use_config(config_path: Path | None, data_dir: Path) -> Path:
    if config_path is None:
        return data_dir
    from collector.config import load_config

    config = load_config(config_path)
    BACKEND.use(config.database_url, config.database_password_env)
    return config.data_dir


@click.group()
def db() -> None:
    """The registry's schema: its version, and migrating it (SQLite files or PostgreSQL)."""


@db.command("status")
@data_dir_option
@config_option("Service config: its data_dir and database_url.")
@format_option
@fail_cleanly
def status(data_dir: Path, config_path: Path | None, fmt: str) -> None:
    """Each database's schema version against the one this release reads and writes."""
    rows = []
    for place in _places(_use_config(config_path, data_dir)):
        found = _version(place)
        supported = place.schema.version
        state = _state(found, supported)
        rows.append(
            {
                "database": place.where,
                "schema": place.schema.name,
                "version": found,
                "release": supported,
                "state": state,
            }
        )
    emit(rows, fmt, ["database", "schema", "version", "release", "state"])
    if any(r["version"] is not None and r["version"] != r["release"] for r in rows):
        raise SystemExit(NEEDS_ACTION)


@db.command("migrate")
@data_dir_option
@config_option("Service config: its data_dir and database_url.")
@fail_cleanly
def migrate(data_dir: Path, config_path: Path | None) -> None:
    """Bring every existing database to this release's schema (one transaction each; a
    database written by a newer release is refused and left as it is)."""
    for place in _places(_use_config(config_path, data_dir)):
        before = _version(place)
        if place.path is None:
            from provisioning.postgres import PostgresDatabase

            PostgresDatabase(BACKEND.url or "", place.schema, password_env=BACKEND.password_env or "").close()
        elif before is None:
            click.echo(f"{place.where}: none yet, nothing to migrate")
            continue
        else:
            open_db(place.path, place.schema).close()
        after = place.schema.version
        change = "already current" if before == after else f"migrated from version {before or 0} to {after}"
        click.echo(f"{place.where}: {place.schema.name} schema {change}")


@db.command("copy")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The data dir whose registry.db is copied.",
)
@click.option(
    "--to", "url", required=True, metavar="URL", help="postgresql://user@host:port/db (no password)."
)
@fail_cleanly
def copy(source: Path, url: str) -> None:
    """Copy a data dir's registry (accounts, devices, audit log, lifecycle events, receipts,
    webhook outbox) into an empty PostgreSQL database, in one transaction: every table's
    row count is checked before it commits, and nothing is copied if anything fails."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from provisioning.copy import TABLES, copy_registry, source_counts
    from provisioning.postgres import PostgresDatabase

    path = registry_path(source)
    if not path.is_file():
        raise ValueError(f"no hookflash registry in {source} (registry.db not found)")
    check = open_db(path, REGISTRY)
    try:
        total = sum(source_counts(check).values())
    finally:
        check.close()
    target = PostgresDatabase(url, REGISTRY_PG, password_env=BACKEND.password_env or "")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    try:
        with Progress(*columns, transient=True, disable=total < 10_000) as bar:
            task = bar.add_task("copying the registry", total=total)
            counts = copy_registry(
                path, target, lambda table, n: bar.update(task, advance=n, description=table)
            )
    finally:
        target.close()
    # From now on the data dir's commands use the database, never the old file.
    note_location(source, url, BACKEND.password_env or DEFAULT_PASSWORD_ENV)
    listed = ", ".join(f"{t} {counts[t]}" for t in TABLES if counts[t])
    click.echo(f"{path} -> {target.describe()}: {sum(counts.values())} rows copied and counted ({listed})")
    click.echo(
        f"commands on {source} now use the database ({location_path(source).name}); set database_url"
        " in the service's config and keep its data_dir (telemetry.db, alerts.db and the pseudonym key"
        f" registry.key stay there); {path.name} is no longer used"
    )
