"""Where a data dir keeps its files (a module of its own, so a command that only opens
them imports nothing else of the runtime)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provisioning.registry import Registry


def registry_path(data_dir: Path) -> Path:
    return data_dir / "registry.db"


def store_path(data_dir: Path) -> Path:
    return data_dir / "telemetry.db"


def alerts_path(data_dir: Path) -> Path:
    return data_dir / "alerts.db"


def location_path(data_dir: Path) -> Path:
    """Where the service of a data dir whose registry is in PostgreSQL notes the database
    (its URL without a password, and the password's variable), so that a command run in that
    data dir without --database-url uses it instead of starting an empty registry.db."""
    return data_dir / "registry-location.json"


def noted_location(data_dir: Path) -> tuple[str, str] | None:
    """(database URL, password variable) the data dir's service noted, or None."""
    try:
        noted = json.loads(location_path(data_dir).read_text())
        return str(noted["database_url"]), str(noted["database_password_env"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{location_path(data_dir)}: unreadable ({exc}); remove it, the service writes it again"
        ) from None


def note_location(data_dir: Path, database_url: str | None, password_env: str) -> None:
    """Note (or, for the data dir's own registry.db, remove the note of) the database."""
    path = location_path(data_dir)
    if database_url is None:
        path.unlink(missing_ok=True)
        return
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps({"database_url": database_url, "database_password_env": password_env}))
    partial.replace(path)


def registry_of(data_dir: Path, database_url: str | None = None, password_env: str | None = None) -> Registry:
    """The registry of a data dir: registry.db in it, or the tables in the PostgreSQL
    database at `database_url` (its password from the variable `password_env` names), with
    the pseudonym key in the data dir either way."""
    from provisioning.pseudonyms import KEY_FILE
    from provisioning.registry import Registry, open_registry_db

    if database_url is None:
        return Registry(registry_path(data_dir))
    return Registry(open_registry_db(database_url, password_env), key_path=data_dir / KEY_FILE)
