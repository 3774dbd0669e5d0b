"""What hookflash writes is readable by its own user only: the data dir and every folder in
it 0700, every file 0600 (registry, telemetry, alerts, spool, exports, logs). The
`hookflash` command sets the process umask to 077, so SQLite's WAL and journal files, the
spool's segments and exports are made that way; `tighten` brings files an older release
(or another tool) made more open back to those modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
UMASK = 0o077


def private_umask() -> int:
    """Set the process umask to 077; returns the one it replaces."""
    return os.umask(UMASK)


def tighten(root: Path) -> list[Path]:
    """Make `root` and everything under it owner-only; the paths that were more open."""
    fixed: list[Path] = []
    if not root.exists():
        return fixed
    for path in [root, *root.rglob("*")]:
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:  # a WAL file checkpointed away meanwhile
            continue
        if stat.S_ISLNK(mode):
            continue
        wanted = PRIVATE_DIR if stat.S_ISDIR(mode) else PRIVATE_FILE
        if stat.S_IMODE(mode) & 0o077:
            path.chmod(stat.S_IMODE(mode) & wanted)
            fixed.append(path)
    return fixed
