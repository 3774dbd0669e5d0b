"""The registry in PostgreSQL, from outside: a running `hookflash run` whose config names a
database collects over MQTT; a billing host (another process, in a folder of its own,
with only the database URL and the password's variable) revokes a customer. Collection
stops, confirmed by the running collector; the collector erases the customer's records
from its own store (the billing host cannot reach it); nothing of the registry is written
to either folder; the password appears in no output. Then the schema commands, a schema
newer than this release, and a database that refuses the password."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import MqttConfig, ServiceConfig, SnmpConfig
from factories import mqtt_device
from postgres import PASSWORD_ENV, Postgres
from provisioning.models import Device
from provisioning.registry import Registry, open_registry_db
from runner import eventually
from services import Mosquitto

GONE, KEPT = "cust-7001-gone", "cust-7002-kept"


def _cli(
    url: str, *args: str | Path, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector.cli.main", "--database-url", url, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), **env},
    )


def _stored(url: str, data: Path, account: str) -> int:
    out = _cli(url, "query", "--account", account, "--format", "json", "--data-dir", data).stdout
    return len(out.splitlines())


def _firmware(url: str, data: Path, account: str) -> set[str]:
    out = _cli(url, "query", "--account", account, "--format", "json", "--data-dir", data).stdout
    return {json.loads(line)["firmware"] for line in out.splitlines()}


def _publish(mosquitto: Mosquitto, topics: list[str], n: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"phones-{n}")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    for topic in topics:
        payload = json.dumps({"firmware": {"version": f"96.86.0.{n}"}})
        client.publish(f"{topic}/firmware", payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def _provisioned_collector(
    tmp_path: Path, url: str, mosquitto: Mosquitto, client_id: str, first: int, **settings: Any
) -> tuple[list[Device], ServiceConfig]:
    """Two phones (one per customer) in the database's registry, and the config of an MQTT
    collector on it (key in its data dir)."""
    data = tmp_path / "data"
    devices = [mqtt_device(first, GONE), mqtt_device(first + 1, KEPT)]
    registry = Registry(open_registry_db(url), key_path=data / "registry.key")
    registry.import_devices(devices, source="crm.csv")
    registry.close()
    cfg = ServiceConfig(
        data_dir=data,
        database_url=url,
        snmp=SnmpConfig(enabled=False),
        mqtt=MqttConfig(enabled=True, port=mosquitto.port, client_id=client_id),
        **settings,
    )
    return devices, cfg


def test_a_revocation_from_another_host_stops_the_running_collector(
    tmp_path: Path, mosquitto: Mosquitto, postgres_url: str, postgres_server: Postgres
) -> None:
    collector_host, billing_host = tmp_path / "collector", tmp_path / "billing"
    billing_host.mkdir()
    collector_host.mkdir()
    data = collector_host / "data"
    gone, kept = mqtt_device(0x71, GONE), mqtt_device(0x72, KEPT)
    registry = Registry(open_registry_db(postgres_url), key_path=data / "registry.key")
    registry.import_devices([gone, kept], source="crm.csv")
    registry.close()
    config = collector_host / "hookflash.toml"
    config.write_text(
        f'data_dir = "data"\ndatabase_url = "{postgres_url}"\n[snmp]\nenabled = false\n'
        f'[mqtt]\nenabled = true\nport = {mosquitto.port}\nclient_id = "hf-pg"\n'
    )
    args = [sys.executable, "-m", "collector.cli.main", "run", "-c", str(config)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        eventually(lambda: len(mosquitto.subscribed_topics("hf-pg")) >= 2, what="service subscribed")
        _publish(mosquitto, [gone.address, kept.address], 1)
        eventually(
            lambda: _stored(postgres_url, data, GONE) == 1 and _stored(postgres_url, data, KEPT) == 1,
            what="records stored",
        )
        revoked = _cli(
            postgres_url, "accounts", "revoke", GONE, "--reason", "contract ended", cwd=billing_host
        )
        assert revoked.returncode == 0, revoked.stderr
        assert "confirmed by 1 running collector" in revoked.stdout, revoked.stdout
        assert "sqlite ended" in revoked.stdout  # the collector erased its own store
        assert list(billing_host.iterdir()) == []  # no data dir made on the billing host
        assert _stored(postgres_url, data, GONE) == 0
        _publish(mosquitto, [gone.address, kept.address], 2)
        eventually(
            lambda: "96.86.0.2" in _firmware(postgres_url, data, KEPT),
            what="the other customer still collected",
        )
        assert _stored(postgres_url, data, GONE) == 0  # nothing collected after the revocation
        listed = _cli(postgres_url, "accounts", "list", "--format", "json", cwd=billing_host)
        statuses = {json.loads(line)["id"]: json.loads(line)["status"] for line in listed.stdout.splitlines()}
        assert statuses == {GONE: "revoked", KEPT: "active"}
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert not (data / "registry.db").exists()  # the registry is in the database only
    for text in (stdout, stderr, revoked.stdout, revoked.stderr, listed.stderr):
        assert postgres_server.password not in text


def test_schema_commands_and_a_schema_newer_than_this_release(
    tmp_path: Path, postgres_url: str, postgres_server: Postgres
) -> None:
    data = tmp_path / "data"
    before = _cli(postgres_url, "db", "status", "--format", "json", "--data-dir", data)
    assert before.returncode == 0, before.stderr
    registry_row = json.loads(before.stdout.splitlines()[0])
    assert registry_row["database"] == postgres_url and registry_row["version"] is None
    migrated = _cli(postgres_url, "db", "migrate", "--data-dir", data)
    assert migrated.returncode == 0 and "registry schema migrated from version 0 to 2" in migrated.stdout
    again = _cli(postgres_url, "db", "migrate", "--data-dir", data)
    assert "registry schema already current" in again.stdout
    with postgres_server.connect(postgres_url.rsplit("/", 1)[1]) as conn:
        conn.execute("UPDATE hookflash_schema SET version = 99 WHERE name = 'registry'")
    newer = _cli(postgres_url, "db", "status", "--data-dir", data)
    assert newer.returncode == 1 and "NEWER than this release" in newer.stdout
    refused = _cli(postgres_url, "accounts", "list", "--data-dir", data)
    assert refused.returncode == 2
    assert "schema version 99 was written by a newer hookflash release" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize(
    "how", ["wrong password", "password in the URL", "password as a URL parameter", "nothing listening"]
)
def test_a_database_that_cannot_be_used_is_one_clear_error_without_the_password(
    tmp_path: Path, postgres_url: str, how: str
) -> None:
    secret = "s3cret-Passw0rd-never-shown"
    url, env = postgres_url, {PASSWORD_ENV: secret}
    if how == "password in the URL":
        url = postgres_url.replace("hookflash@", f"hookflash:{secret}@")
    elif how == "password as a URL parameter":
        url = f"{postgres_url}?password={secret}"
    elif how == "nothing listening":
        url = "postgresql://hookflash@127.0.0.1:9/nothing"
    result = _cli(url, "accounts", "list", "--data-dir", tmp_path / "data", **env)
    assert result.returncode == 2, result.stderr
    assert secret not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    expected = {
        "wrong password": "password authentication failed",
        "password in the URL": "must not hold a password",
        "password as a URL parameter": "must not hold a password",
        "nothing listening": "cannot connect",
    }[how]
    assert expected in result.stderr, result.stderr


def test_db_copy_moves_a_data_dirs_registry_row_for_row(
    tmp_path: Path, postgres_url: str, postgres_server: Postgres
) -> None:
    from provisioning.copy import TABLES
    from provisioning.models import AccountStatus

    data = tmp_path / "data"
    demo_args = ["demo", "--devices", "20", "--duration", "2", "--data-dir", str(data)]
    demo = subprocess.run(
        [sys.executable, "-m", "collector.cli.main", *demo_args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stderr
    copied = _cli(postgres_url, "db", "copy", "--from", data, "--to", postgres_url)
    assert copied.returncode == 0, copied.stderr
    assert "rows copied and counted" in copied.stdout
    file = sqlite3.connect(data / "registry.db")
    with postgres_server.connect(postgres_url.rsplit("/", 1)[1]) as conn:
        for table, columns in TABLES.items():
            listed = ", ".join(columns)
            want = [tuple(r) for r in file.execute(f"SELECT {listed} FROM {table} ORDER BY 1, 2")]
            got = [tuple(r) for r in conn.execute(f"SELECT {listed} FROM {table} ORDER BY 1, 2")]
            assert got == want, table
        last_event = file.execute("SELECT max(id) FROM events").fetchone()[0]
    again = _cli(postgres_url, "db", "copy", "--from", data, "--to", postgres_url)
    assert again.returncode == 2 and "already holds a registry" in again.stderr
    registry = Registry(open_registry_db(postgres_url), key_path=data / "registry.key")
    account = registry.accounts()[0].id
    event = registry.set_status(account, AccountStatus.INACTIVE, "after the copy")
    assert event is not None and event.id == last_event + 1  # event ids go on from the file's
    registry.close()
    # The data dir's commands now read the database (the copy noted it), not the old file.
    listing = ["accounts", "list", "--format", "json", "--data-dir", str(data)]
    listed = subprocess.run(
        [sys.executable, "-m", "collector.cli.main", *listing], capture_output=True, text=True
    )
    statuses = {json.loads(line)["id"]: json.loads(line)["status"] for line in listed.stdout.splitlines()}
    assert statuses[account] == "inactive", listed.stderr


def test_a_collector_whose_connections_are_cut_misses_no_event(
    tmp_path: Path, mosquitto: Mosquitto, postgres_url: str, postgres_server: Postgres
) -> None:
    """The server ends every hookflash connection (a failover, a restart, an idle
    timeout); a revocation committed right after still reaches the running collector:
    its listener reconnects and catches up by id, and the stop is confirmed."""
    from collector.retention import load_policy
    from collector.runtime.deactivation import build_deactivator
    from provisioning.receipts import Action
    from runner import RunningService

    devices, cfg = _provisioned_collector(tmp_path, postgres_url, mosquitto, "hf-cut", 0x81)
    data = cfg.data_dir
    registry = Registry(open_registry_db(postgres_url), key_path=data / "registry.key")
    with RunningService(cfg) as running:
        eventually(lambda: len(mosquitto.subscribed_topics("hf-cut")) == 2, what="subscribed")
        eventually(lambda: registry.live_collectors() != [], what="the collector's heartbeat")
        with postgres_server.connect(postgres_url.rsplit("/", 1)[1]) as conn:
            cut = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'hookflash' AND pid <> pg_backend_pid()"
            ).fetchone()
        assert cut is not None and cut[0] >= 2  # the pools' and the listener's connections
        registry.close()  # this test's own connections were cut too: a new one, as a new CLI
        registry = Registry(open_registry_db(postgres_url), key_path=data / "registry.key")
        deactivator = build_deactivator(registry, [], load_policy(), ack_timeout_s=5)
        receipt, _ = deactivator.request(Action.SUSPEND, GONE, "after the cut")
        done = asyncio.run(deactivator.process(receipt))
        assert len(done.result["acknowledged_by"]) == 1, done.result
        assert done.result["unacknowledged"] == []
        assert running.service is not None
        assert not running.service.gate.allows(devices[0].id) and running.service.gate.allows(devices[1].id)
        eventually(lambda: mosquitto.unsubscribed_topics("hf-cut") != [], what="the topic dropped")
    registry.close()


def test_collection_goes_on_while_the_database_is_down_and_stops_after_it_is_back(
    tmp_path: Path,
    mosquitto: Mosquitto,
    postgres_url: str,
    postgres_server: Postgres,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The registry's server stops for a while under a running collector: messages keep
    being stored (the gate's state is in memory); the API answers 503 with Retry-After,
    accepting nothing; once the server is back, a revocation over the API reaches the
    collector and is confirmed."""
    import httpx

    from collector.config import ApiConfig
    from runner import RunningService
    from services import free_port

    token = "api-token-for-the-outage-test-0123"
    monkeypatch.setenv("TEST_API_TOKEN", token)
    api_config = ApiConfig(enabled=True, port=free_port("tcp"), token_env="TEST_API_TOKEN")
    devices, cfg = _provisioned_collector(tmp_path, postgres_url, mosquitto, "hf-down", 0x91, api=api_config)
    data = cfg.data_dir
    body = {"request_id": "billing-outage-1", "account_id": GONE, "action": "suspend", "reason": "r"}
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{cfg.api.port}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    with RunningService(cfg) as running, api:
        eventually(lambda: len(mosquitto.subscribed_topics("hf-down")) == 2, what="subscribed")
        postgres_server.stop_server()
        try:
            _publish(mosquitto, [d.address for d in devices], 3)
            eventually(lambda: running.stats.stored >= 2, what="stored while the database is down")
            refused = api.post("/v1/deactivations", json=body)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "5", refused.text
            assert "unavailable" in refused.json()["detail"]
            assert api.get("/v1/fleet/summary").status_code == 503
        finally:
            postgres_server.start_server()
        registry = Registry(open_registry_db(postgres_url), key_path=data / "registry.key")
        eventually(lambda: registry.live_collectors() != [], timeout=15, what="heartbeats again")
        accepted = api.post("/v1/deactivations", json=body)
        assert accepted.status_code == 202, accepted.text
        receipt_url = accepted.json()["receipt_url"]
        eventually(lambda: api.get(receipt_url).json()["status"] == "done", what="receipt done")
        result = api.get(receipt_url).json()["result"]
        assert len(result["acknowledged_by"]) == 1, result
        assert running.service is not None and not running.service.gate.allows(devices[0].id)
        assert api.get("/v1/fleet/summary").json()["accounts"]["inactive"] == 1  # the views' copy too
    registry.close()


def test_start_up_refuses_what_would_split_the_registry(
    tmp_path: Path, mosquitto: Mosquitto, postgres_url: str
) -> None:
    """A data dir whose registry.db holds accounts is not left behind for an empty
    database; a second collector on the same database is refused; a command run in the
    data dir without --database-url uses the database its service noted, never a new
    registry.db; the service run with only HOOKFLASH_DATABASE_URL uses it too; and the data
    dir started again without a database URL is refused, not served from an empty file."""
    data = tmp_path / "data"
    Registry(data / "registry.db").import_devices([mqtt_device(0xA1, GONE)], source="old.csv")
    config = tmp_path / "hookflash.toml"
    plain = f'data_dir = "data"\n[snmp]\nenabled = false\n[mqtt]\nenabled = true\nport = {mosquitto.port}\n'
    config.write_text(plain + 'client_id = "hf-one"\n')
    refused = _cli(postgres_url, "run", "-c", config)  # the URL from the command line
    assert refused.returncode == 2 and "holds 1 account(s) but database_url names an empty" in refused.stderr
    assert "hookflash db copy --from" in refused.stderr
    copied = _cli(postgres_url, "db", "copy", "--from", data, "--to", postgres_url)
    assert copied.returncode == 0, copied.stderr
    args = [sys.executable, "-m", "collector.cli.main", "run", "-c", str(config)]
    env = {**os.environ, "HOOKFLASH_DATABASE_URL": postgres_url}
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        eventually(lambda: mosquitto.subscribed_topics("hf-one") != [], what="the first collector")
        other = tmp_path / "other.toml"
        other.write_text(plain.replace('"data"', '"data2"') + 'client_id = "hf-two"\n')
        second = _cli(postgres_url, "run", "-c", other)
        assert second.returncode == 2 and "another collector is running on this registry" in second.stderr
        # In the data dir, without --database-url: the noted database, not registry.db.
        listing = ["devices", "list", "--format", "json", "--data-dir", str(data)]
        listed = subprocess.run(
            [sys.executable, "-m", "collector.cli.main", *listing],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert [json.loads(line)["account_id"] for line in listed.stdout.splitlines()] == [GONE]
    finally:
        first.send_signal(signal.SIGTERM)
        _, logged = first.communicate(timeout=20)
    assert first.returncode == 0, logged
    assert "registry.db is not used: the registry is postgresql://" in logged
    without = subprocess.run(
        [sys.executable, "-m", "collector.cli.main", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert without.returncode == 2 and "set database_url, or remove that file" in without.stderr


def test_a_collector_killed_on_this_host_restarts_at_once(
    tmp_path: Path, mosquitto: Mosquitto, postgres_url: str
) -> None:
    """`hookflash run` killed with SIGKILL leaves a heartbeat that is fresh for a few
    seconds; started again at once on the same host (systemd's Restart=), it is not
    refused for it: that collector's process is gone. (A live one is: see above.)"""
    _, cfg = _provisioned_collector(tmp_path, postgres_url, mosquitto, "hf-kill", 0xB1)
    config = tmp_path / "hookflash.toml"
    config.write_text(
        f'data_dir = "data"\ndatabase_url = "{postgres_url}"\n[snmp]\nenabled = false\n'
        f'[mqtt]\nenabled = true\nport = {mosquitto.port}\nclient_id = "hf-kill"\n'
    )
    args = [sys.executable, "-m", "collector.cli.main", "run", "-c", str(config)]
    registry = Registry(open_registry_db(postgres_url), key_path=cfg.data_dir / "registry.key")
    try:
        first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        eventually(lambda: registry.live_collectors() != [], what="the first collector's heartbeat")
        first.kill()
        first.wait(10)
        assert registry.live_collectors() != []  # its heartbeat outlives it for a moment
        again = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            eventually(lambda: f"-{again.pid}-" in " ".join(registry.live_collectors()), what="restarted")
            assert again.poll() is None  # running, not refused
        finally:
            again.send_signal(signal.SIGTERM)
            _, logged = again.communicate(timeout=20)
        assert again.returncode == 0, logged
    finally:
        registry.close()
