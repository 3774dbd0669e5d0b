"""Schema migrations: a data dir written by release 0.1.0 upgrades in place with nothing
lost; a file from a newer release is refused, naming the file and both versions; the
runner applies ordered steps in one transaction."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from collector.alerts.state import ALERTS, held_for_account
from collector.sinks.sqlite import EmbeddedStore
from collector.sinks.sqlite.schema import TELEMETRY
from provisioning.db import Schema, SchemaTooNew, open_db
from provisioning.outbox import Outbox
from provisioning.receipts import ReceiptBook
from provisioning.registry import Registry
from provisioning.schema import REGISTRY
from runner import hookflash

FIXTURE = Path(__file__).parents[1] / "fixtures" / "datadir-0.1.0"
MANIFEST = json.loads((FIXTURE / "MANIFEST.json").read_text())
sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
from make_datadir_fixture import table_digest  # noqa: E402


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    copy.mkdir()
    for name in ("registry.db", "telemetry.db", "alerts.db"):
        shutil.copy2(FIXTURE / name, copy / name)
    return copy


def version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def test_the_fixture_is_what_release_0_1_0_wrote() -> None:
    files = MANIFEST["files"]
    assert {name: f["user_version"] for name, f in files.items()} == {
        "registry.db": 0,
        "telemetry.db": 0,
        "alerts.db": 0,
    }
    assert files["telemetry.db"]["tables"]["telemetry"]["rows"] > 100
    assert files["registry.db"]["tables"]["receipts"]["rows"] > 0


def test_a_release_0_1_0_data_dir_upgrades_in_place_with_nothing_lost(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="provisioning.db"):
        Registry(data_dir / "registry.db").close()
        ReceiptBook(data_dir / "registry.db")
        Outbox(data_dir / "registry.db")
        EmbeddedStore.open(data_dir / "telemetry.db").close()
        held_for_account(data_dir / "alerts.db", "acct-1001")
    assert version(data_dir / "registry.db") == REGISTRY.version
    assert version(data_dir / "telemetry.db") == TELEMETRY.version
    assert version(data_dir / "alerts.db") == ALERTS.version
    upgraded = [r.getMessage() for r in caplog.records if "upgraded" in r.getMessage()]
    assert len(upgraded) == 3, upgraded  # each file once, however many parts open it
    targets = {"registry.db": REGISTRY, "telemetry.db": TELEMETRY, "alerts.db": ALERTS}
    for name, schema in targets.items():  # each straight to the newest version
        assert any(name in line and f"from version 0 to {schema.version}" in line for line in upgraded), name
    for name, expected in MANIFEST["files"].items():
        db = sqlite3.connect(data_dir / name)
        for table, before in expected["tables"].items():
            now = table_digest(db, table)
            assert now["columns"][: len(before["columns"])] == before["columns"], (name, table)
            if now["columns"] == before["columns"]:
                assert (now["rows"], now["sha256"]) == (before["rows"], before["sha256"]), (name, table)
            else:  # a column was added: the old columns keep every value
                old = ", ".join(f'"{c}"' for c in before["columns"])
                rows = sorted(
                    json.dumps(list(r), default=str) for r in db.execute(f"SELECT {old} FROM {table}")
                )
                assert hashlib.sha256("\n".join(rows).encode()).hexdigest() == before["sha256"], (name, table)
        db.close()


def test_the_command_line_reads_an_upgraded_data_dir(data_dir: Path) -> None:
    records = hookflash("query", "--format", "json", "--data-dir", data_dir)
    assert records.returncode == 0, records.stderr
    rows = records.stdout.splitlines()
    assert len(rows) == MANIFEST["files"]["telemetry.db"]["tables"]["telemetry"]["rows"]
    assert all(json.loads(row)["device_id"] for row in rows)
    accounts = hookflash("accounts", "list", "--format", "json", "--data-dir", data_dir)
    assert accounts.returncode == 0, accounts.stderr
    statuses = {json.loads(row)["id"]: json.loads(row)["status"] for row in accounts.stdout.splitlines()}
    assert statuses["acct-1002"] == "inactive" and statuses["acct-1003"] == "revoked"


@pytest.mark.parametrize("name", ["registry.db", "telemetry.db", "alerts.db"])
def test_a_file_from_a_newer_release_is_refused_naming_it_and_both_versions(
    data_dir: Path, name: str
) -> None:
    path = data_dir / name
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    before = path.read_bytes()
    supported = {"registry.db": REGISTRY, "telemetry.db": TELEMETRY, "alerts.db": ALERTS}[name].version
    opener = {
        "registry.db": lambda: Registry(path),
        "telemetry.db": lambda: EmbeddedStore.open(path),
        "alerts.db": lambda: held_for_account(path, "acct-1001"),
    }[name]
    with pytest.raises(SchemaTooNew) as refused:
        opener()
    message = str(refused.value)
    assert str(path) in message and "version 99" in message and f"up to version {supported}" in message
    assert path.read_bytes() == before  # untouched


def test_the_command_line_refuses_a_newer_data_dir_in_one_line(data_dir: Path) -> None:
    db = sqlite3.connect(data_dir / "telemetry.db")
    db.execute("PRAGMA user_version = 7")
    db.close()
    done = hookflash("query", "--data-dir", data_dir)
    assert done.returncode == 2
    assert "telemetry.db: schema version 7 was written by a newer hookflash release" in done.stderr
    assert "Traceback" not in done.stderr


def test_migrations_run_in_order_and_a_failing_one_changes_nothing(tmp_path: Path) -> None:
    def add_column(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE t ADD COLUMN b TEXT NOT NULL DEFAULT 'x'")

    v1 = "CREATE TABLE t (a INTEGER); CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;"
    path = tmp_path / "f.db"
    db = open_db(path, Schema("test", (v1,)))
    db.execute("INSERT INTO t VALUES (1)")
    db.close()
    db = open_db(path, Schema("test", (v1, add_column)))
    assert [tuple(r) for r in db.execute("SELECT a, b FROM t")] == [(1, "x")]
    db.close()
    assert version(path) == 2
    broken = Schema("test", (v1, add_column, "CREATE TABLE u (c); INSERT INTO nowhere VALUES (1);"))
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        open_db(path, broken)
    assert version(path) == 2  # rolled back: no table u, version unchanged
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'u'").fetchone()[0] == 0


def _pk(db: sqlite3.Connection, table: str) -> list[str]:
    rows = sorted((r[5], r[1]) for r in db.execute(f'PRAGMA table_info("{table}")') if r[5])
    return [name for _, name in rows]


@pytest.mark.parametrize("found", [0, 2])
def test_the_views_index_is_rebuilt_keyed_by_owner(data_dir: Path, found: int) -> None:
    path = data_dir / "telemetry.db"
    db = sqlite3.connect(path)
    old = {t: sorted(tuple(r) for r in db.execute(f"SELECT * FROM {t}")) for t in ("latest", "device_state")}
    db.execute(f"PRAGMA user_version = {found}")  # 0.1.0's index has version 2's layout
    db.close()
    store = EmbeddedStore.open(path)
    db = store.db.connection
    assert version(path) == TELEMETRY.version
    assert _pk(db, "latest") == ["slot", "device_id", "account_id"]
    assert _pk(db, "device_state") == ["device_id", "account_id"]
    assert sorted(tuple(r) for r in db.execute("SELECT * FROM latest")) == old["latest"]
    states = db.execute("SELECT device_id, last_seen, reg_state, mos, version FROM device_state")
    assert sorted(tuple(r) for r in states) == old["device_state"]  # each device had one owner
    # The new triggers: a record of a device under another account is indexed beside the old.
    device, slot = db.execute("SELECT device_id, slot FROM latest ORDER BY 1, 2 LIMIT 1").fetchone()
    db.execute(
        "INSERT INTO telemetry (device_id, account_id, kind, observed_at, received_at, retention_class,"
        " source, model, firmware, fields) SELECT device_id, 'acct-new', kind, 0, 0, retention_class,"
        " source, model, firmware, fields FROM telemetry WHERE id = (SELECT row_id FROM latest"
        " WHERE device_id = ? AND slot = ?)",
        (device, slot),
    )
    owners = db.execute("SELECT account_id FROM latest WHERE device_id = ? AND slot = ?", (device, slot))
    assert len({r[0] for r in owners}) == 2
    assert db.execute("SELECT count(*) FROM device_state WHERE device_id = ?", (device,)).fetchone()[0] == 2
    store.close()
