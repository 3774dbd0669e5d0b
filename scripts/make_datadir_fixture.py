"""Make a small data dir with the hookflash release installed here, for the upgrade test.

    python scripts/make_datadir_fixture.py OUT_DIR

It drives only the command line, as an operator would, so the same script works with
every release: a short `hookflash demo` (registry, telemetry, quarantine, alerts,
receipts, outbox), an extra device import with a troubleshooting window, a suspension
and a reactivation. Then it folds each file's WAL back into it (the fixture is the `.db`
files alone) and writes `MANIFEST.json`: per file, the schema version found, and per
table its row count and a digest of its rows, which `tests/unit/test_migrations.py`
checks after upgrading a copy in place.

tests/fixtures/datadir-0.1.0 was made by this script with release 0.1.0 (commit 54f02ca).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

FILES = ("registry.db", "telemetry.db", "alerts.db")


def hookflash(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "collector.cli.main", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"hookflash {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def table_digest(db: sqlite3.Connection, table: str) -> dict[str, object]:
    columns = [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]
    rows = sorted(json.dumps(list(r), default=str) for r in db.execute(f'SELECT * FROM "{table}"'))
    return {
        "columns": columns,
        "rows": len(rows),
        "sha256": hashlib.sha256("\n".join(rows).encode()).hexdigest(),
    }


def manifest(data_dir: Path) -> dict[str, object]:
    files: dict[str, object] = {}
    for name in FILES:
        db = sqlite3.connect(data_dir / name)
        tables = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1"
            )
        ]
        files[name] = {
            "user_version": db.execute("PRAGMA user_version").fetchone()[0],
            "tables": {t: table_digest(db, t) for t in tables},
        }
        db.close()
    return {"made_by": "scripts/make_datadir_fixture.py", "files": files}


def compact(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("VACUUM")
    db.close()


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = Path(sys.argv[1])
    if out.exists():
        raise SystemExit(f"{out} exists; pass a new folder")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        hookflash("demo", "--devices", "8", "--duration", "8", "--period", "1", "--data-dir", str(data))
        until = (datetime.now(UTC) + timedelta(days=2)).isoformat()
        devices = Path(tmp) / "more.csv"
        devices.write_text(
            "device_id,account_id,vendor,model,transport,address,debug_until\n"
            f"00:0b:82:fe:00:01,acct-2001,Grandstream,HT812,snmp,127.0.0.1:16100,{until}\n"
            "80-5e-c0-fe-00-02,acct-2002,Yealink,T54W,mqtt,hookflash/805ec0fe0002,\n"
        )
        hookflash("devices", "import", str(devices), "--data-dir", str(data))
        hookflash("accounts", "suspend", "acct-2001", "--reason", "non-payment", "--data-dir", str(data))
        hookflash("accounts", "reactivate", "acct-2001", "--data-dir", str(data))
        out.mkdir(parents=True)
        for name in FILES:
            compact(data / name)
            shutil.copy2(data / name, out / name)
    (out / "MANIFEST.json").write_text(json.dumps(manifest(out), indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}: " + ", ".join(f"{n} {(out / n).stat().st_size // 1024} KiB" for n in FILES))


if __name__ == "__main__":
    main()
