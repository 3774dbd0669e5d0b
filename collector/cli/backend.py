"""Where the registry is, for this command: a module of its own, so that the entry point
sets it without importing anything else (`hookflash --help` stays light)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collector.runtime.paths import noted_location


@dataclass
class Backend:
    """Where the registry is, from `hookflash --database-url` (or HOOKFLASH_DATABASE_URL),
    a command's -c config, or what the data dir's service noted (`for_data_dir`): None,
    the data dir's registry.db."""

    url: str | None = None
    password_env: str | None = None

    def use(self, url: str | None, password_env: str) -> None:
        """A config's database_url wins over the command line's."""
        if url is not None:
            self.url, self.password_env = url, password_env

    def for_data_dir(self, data_dir: Path) -> Backend:
        """Where the registry is for a command on `data_dir`: set explicitly, or else the
        database the data dir's service runs on (so that such a command never starts an
        empty registry.db beside it)."""
        if self.url is None:
            noted = noted_location(data_dir)
            if noted is not None:
                self.url, self.password_env = noted
        return self


BACKEND = Backend()
