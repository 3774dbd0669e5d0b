"""The one check of a `database_url` setting (no import of any database module: the config
models, which every part of the collector reads, use it)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

DEFAULT_PASSWORD_ENV = "HOOKFLASH_DATABASE_PASSWORD"  # the variable holding the password


def check_database_url(url: str | None) -> str | None:
    """A postgresql:// URL naming a host and a database, and no password (that comes
    from the environment variable `database_password_env` names)."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"must be a postgresql:// URL, not {parts.scheme or 'a bare name'}")
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise ValueError(
            "must not hold a password: set it in the environment variable named by database_password_env"
        )
    if not parts.path.strip("/"):
        raise ValueError("names no database (postgresql://user@host:port/DATABASE)")
    return url
