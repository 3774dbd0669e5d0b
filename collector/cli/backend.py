"""Where the registry is, for this command: a module of its own, so that the entry point
sets it without importing anything else (`hookflash --help` stays light)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backend:
    """Where the registry is, from `hookflash --database-url` (or HOOKFLASH_DATABASE_URL)
    or a command's -c config: None, the data dir's registry.db."""

    url: str | None = None
    password_env: str | None = None

    def use(self, url: str | None, password_env: str) -> None:
        """A config's database_url wins over the command line's."""
        if url is not None:
            self.url, self.password_env = url, password_env


BACKEND = Backend()
