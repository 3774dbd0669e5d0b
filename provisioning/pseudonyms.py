"""Keyed pseudonyms for what the registry keeps of an ended account (P5).

When an account's data has ended, the registry's rows about it (lifecycle events, audit
entries, receipts) stay, so that counts and the history of requests remain possible, but
every identifier in them (account id, device MACs, addresses, request ids) is replaced
by an HMAC-SHA256 of it under a secret key. Without the key a pseudonym leads back to
nothing (a MAC has only 2^46 values: an unkeyed hash of one is no protection); with it,
hookflash can still answer "what happened to the receipt of request R of account X".

The key is `registry.key` in the data dir (beside registry.db; with the registry in
PostgreSQL, still in the data dir, never in the database): 32 random bytes, created once,
owner-only. Losing it loses only that lookup. It must not be copied with an export.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

PREFIX = "anon_"
KEY_FILE = "registry.key"
_KEY_BYTES = 32


def _load_or_create(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fresh = secrets.token_bytes(_KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            key = path.read_bytes()
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(fresh)
                out.flush()
                os.fsync(out.fileno())
            return fresh
    if len(key) != _KEY_BYTES:
        raise ValueError(
            f"{path}: the pseudonym key must be {_KEY_BYTES} bytes, found {len(key)}; "
            "restore it from a backup, or move it away to start a new one (old pseudonyms "
            "can then no longer be looked up)"
        )
    return key


class Pseudonyms:
    """The pseudonyms of one data dir; its key is read, or made, when first needed."""

    def __init__(self, key_path: Path) -> None:
        self._path = key_path
        self._key: bytes | None = None

    def __call__(self, value: str) -> str:
        if self._key is None:
            self._key = _load_or_create(self._path)
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest[:24]

    def known(self, value: str) -> str | None:
        """The pseudonym of `value`, or None where no account was ever forgotten (no key:
        then nothing is kept under a pseudonym, and no key is made just to look)."""
        if self._key is None and not self._path.exists():
            return None
        return self(value)


def is_pseudonym(value: str | None) -> bool:
    return value is not None and value.startswith(PREFIX) and len(value) == len(PREFIX) + 24
