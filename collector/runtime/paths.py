"""Where a data dir keeps its files (a module of its own, so a command that only opens
them imports nothing else of the runtime)."""

from __future__ import annotations

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


def registry_of(
    data_dir: Path, database_url: str | None = None, password_env: str | None = None
) -> Registry:
    """The registry of a data dir: registry.db in it, or the tables in the PostgreSQL
    database at `database_url` (its password from the variable `password_env` names), with
    the pseudonym key in the data dir either way."""
    from provisioning.pseudonyms import KEY_FILE
    from provisioning.registry import Registry, open_registry_db

    if database_url is None:
        return Registry(registry_path(data_dir))
    return Registry(open_registry_db(database_url, password_env), key_path=data_dir / KEY_FILE)
