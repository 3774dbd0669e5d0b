"""P7, files: the data dir and every folder in it are 0700 and every file hookflash writes
is 0600, from a real `hookflash demo` run (SQLite files, WAL and shared memory included),
an export, and a data dir an older release left readable by others."""

from __future__ import annotations

import stat
from pathlib import Path

from runner import hookflash


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def test_every_file_and_folder_hookflash_writes_is_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    left = data / "left-by-an-older-release.db"
    left.write_text("x")
    left.chmod(0o644)
    run = hookflash("demo", "--devices", "8", "--duration", "5", "--period", "0.5", "--data-dir", data)
    assert run.returncode == 0, run.stderr
    exported = tmp_path / "export.json"
    done = hookflash("privacy", "export", "acct-1001", "-o", exported, "--data-dir", data)
    assert done.returncode == 0, done.stderr
    found = modes(data)
    assert len(found) > 5 and any(name.endswith(".db") for name in found)
    opened = {name: oct(mode) for name, mode in found.items() if mode & 0o077}
    assert not opened, opened
    dirs = {name for name in found if (data / name).is_dir()}
    assert all(found[name] == 0o700 for name in dirs) and "." in dirs
    assert all(found[name] == 0o600 for name in set(found) - dirs)
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
