"""An account that stopped while hookflash was down: at start its alerts and queued
notices are dropped (no event told the running service), sink alerts stay."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from collector.alerts.engine import AlertEngine
from collector.config.alerts import AlertsConfig
from collector.sinks.sqlite import EmbeddedStore
from collector.views.db import ViewsDb
from provisioning.registry import Registry


def test_stopped_accounts_alerts_and_notices_are_forgotten(tmp_path: Path) -> None:
    Registry(tmp_path / "registry.db").close()
    EmbeddedStore.open(tmp_path / "telemetry.db").close()
    views = ViewsDb(tmp_path / "telemetry.db", tmp_path / "registry.db")
    engine = AlertEngine(AlertsConfig(enabled=True), views, tmp_path / "alerts.db", lambda _d: True)
    for account, device in (
        ("acct-gone", "000b82000001"),
        ("acct-live", "000b82000002"),
        ("", "sink:influx"),
    ):
        engine.outbox.enqueue("noc", "alert.firing", {"device_id": device}, account or None)
    db = sqlite3.connect(tmp_path / "alerts.db")
    rows = [("r", "000b82000001", "acct-gone"), ("r", "000b82000002", "acct-live"), ("s", "sink:influx", "")]
    db.executemany("INSERT INTO alert_state VALUES (?, ?, ?, 'HT812', 'firing', 0, '{}')", rows)
    db.commit()
    assert engine.forget_all_but({"acct-live"}) == 1
    kept = {r[0] for r in db.execute("SELECT account_id FROM alert_state")}
    queued = [json.loads(r[0])["device_id"] for r in db.execute("SELECT payload FROM outbox")]
    assert kept == {"acct-live", ""} and sorted(queued) == ["000b82000002", "sink:influx"]
    db.close()
    engine.close()
