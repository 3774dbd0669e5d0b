"""P5 from outside: a running `hookflash run` collects two customers' phones over MQTT;
billing revokes one over the HTTP API (with a reason naming the customer), the stop notice
reaches billing's webhook, and a retention sweep runs. Then no file hookflash wrote
(registry, telemetry and alerts databases with their WAL, everything else in the data
dir) holds any identifier of the revoked customer: account id, MACs, IP address, SIP
address, the request id or the reason. The other customer's are all still there. The
log, which hookflash does not erase (README: the operator's retention), names the revoked
account in this run, and nothing else of it; alerts and failing devices are logged by device.
The first test runs on both backends: with the registry in PostgreSQL, every table of its
database is read as well, beside every file of the data dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.runtime.paths import registry_of
from factories import mqtt_device
from postgres import Postgres
from provisioning.registry import Registry
from receiver import WebhookReceiver
from runner import count_rows, eventually, hookflash, lab_profile
from services import Mosquitto, free_port

TOKEN = "billing-token-for-tests-0123456789"
PROFILE = """extends = ["yealink-t5x"]
vendor = "Yealink"
models = ["T54W"]
[[mqtt]]
kind = "network"
path = "net.ip"
field = "wan_ip"
type = "string"
"""
GONE, KEPT = "cust-4417-gone", "cust-5520-kept"
REQUEST = f"billing-{GONE}-close"
REASON = "Jane Q. Public closed her contract"


def _stored(data: Path, account: str) -> int:
    out = hookflash("query", "--account", account, "--format", "json", "--data-dir", data).stdout
    return len(out.splitlines())


def _forgotten(data: Path, database_url: str | None = None) -> bool:
    sql = "SELECT count(*) FROM accounts WHERE ended_at IS NOT NULL"
    if database_url is None:
        return count_rows(data / "registry.db", sql) == 1
    registry = registry_of(data, database_url)
    try:
        row = registry.db.one(sql)
        return row is not None and row[0] == 1
    finally:
        registry.close()


def test_a_revoked_customer_leaves_no_identifier_in_any_file(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str | None, request: pytest.FixtureRequest
) -> None:
    """On both backends: with the registry in PostgreSQL, every table of the database is
    read too (after the files)."""
    data = tmp_path / "data"
    lab_profile(tmp_path, "lab-phone", PROFILE)
    phones = {
        GONE: (mqtt_device(0x41, GONE), "198.51.100.77", "sip:4417@pbx.example"),
        KEPT: (mqtt_device(0x52, KEPT), "198.51.100.88", "sip:5520@pbx.example"),
    }
    registry = registry_of(data, database_url)
    registry.import_devices(
        [d.model_copy(update={"profile": "lab-phone", "sip_aor": aor}) for d, _, aor in phones.values()],
        source="crm-export.csv",
    )
    registry.close()
    backend = f'database_url = "{database_url}"\n' if database_url else ""
    api_port = free_port("tcp")
    with WebhookReceiver() as billing:
        config = tmp_path / "hookflash.toml"
        config.write_text(
            f'data_dir = "data"\n{backend}profile_dirs = ["profiles"]\nsweep_interval_s = 1\n'
            "[snmp]\nenabled = false\n"
            f'[mqtt]\nenabled = true\nport = {mosquitto.port}\nclient_id = "hf-erase"\n'
            f'[api]\nenabled = true\nport = {api_port}\ntoken_env = "TEST_API_TOKEN"\n'
            f'[[webhooks]]\nname = "billing"\nurl = "{billing.url}"\nsecret_env = "TEST_HOOK_SECRET"\n'
        )
        env = {**os.environ, "TEST_API_TOKEN": TOKEN, "TEST_HOOK_SECRET": "hook-signing-secret-0123"}
        args = [sys.executable, "-m", "collector.cli.main", "run", "-c", str(config)]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            eventually(lambda: mosquitto.subscribed_topics("hf-erase") != [], what="service subscribed")
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="phones")
            client.connect(mosquitto.host, mosquitto.port)
            client.loop_start()
            for device, ip, _ in phones.values():
                for kind, payload in (
                    ("network", {"net": {"ip": ip}}),
                    ("firmware", {"firmware": {"version": "96.86.0.45"}}),
                    ("call_quality", {"call": {"mos": 4.2, "codec": "G722"}}),
                ):
                    client.publish(f"{device.address}/{kind}", json.dumps(payload), qos=1).wait_for_publish(5)
            client.disconnect()
            client.loop_stop()
            eventually(lambda: _stored(data, GONE) == 3 and _stored(data, KEPT) == 3, what="records stored")
            with httpx.Client(
                base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {TOKEN}"}
            ) as api:
                body = {"request_id": REQUEST, "account_id": GONE, "action": "revoke", "reason": REASON}
                accepted = api.post("/v1/deactivations", json=body)
                assert accepted.status_code == 202, accepted.text
                receipt_url = accepted.json()["receipt_url"]
                eventually(lambda: api.get(receipt_url).json()["status"] == "done", what="receipt done")
                eventually(lambda: len(billing.deliveries) == 1, what="stop notice delivered")
                assert billing.deliveries[0].json()["account_id"] == GONE  # billing got the real id
                eventually(
                    lambda: _forgotten(data, database_url), timeout=15, what="a sweep forgot the account"
                )
                receipt = api.get(receipt_url).json()  # still answered, under a pseudonym
                assert receipt["status"] == "done" and receipt["account_id"].startswith("anon_")
                retry = api.post("/v1/deactivations", json=body)
                assert retry.status_code == 200 and retry.json()["receipt_id"] == receipt["id"]
        finally:
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    written = [p for p in data.rglob("*") if p.is_file()]
    assert {"registry.db" if database_url is None else "registry-location.json", "telemetry.db"} <= {
        p.name for p in written
    }
    contents = {p.relative_to(data).as_posix(): p.read_bytes() for p in written}
    if database_url is not None:  # and every table of the registry's database
        server: Postgres = request.getfixturevalue("postgres_server")
        tables = server.every_row_as_text(database_url)
        contents.update({f"database table {t}": rows.encode() for t, rows in tables.items()})
    raw = b"".join(contents.values())
    gone_device, gone_ip, gone_aor = phones[GONE]
    kept_device, kept_ip, kept_aor = phones[KEPT]
    for identifier in (GONE, gone_device.id, gone_ip, gone_aor[4:], REQUEST, "Jane Q."):
        holding = sorted(name for name, body in contents.items() if identifier.encode() in body)
        assert holding == [], f"{identifier} is still in {holding}"
    # The log (the operator's journal, kept by its own retention) names the account whose
    # status changed, and nothing else of it.
    for identifier in (gone_device.id, gone_ip, gone_aor[4:], REQUEST, "Jane Q."):
        assert identifier not in stdout + stderr, identifier
    for identifier in (KEPT, kept_device.id, kept_ip, kept_aor[4:]):
        assert identifier.encode() in raw, identifier
    assert _stored(data, KEPT) == 3


def test_without_webhooks_a_revoked_account_is_forgotten_too(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The CLI's revocation queues a notice for all webhooks; a service with none configured
    delivers it to nobody, and its next sweep forgets the account."""
    data = tmp_path / "data"
    phone = mqtt_device(0x43, GONE)
    Registry(data / "registry.db").import_devices([phone, mqtt_device(0x54, KEPT)], source="crm.csv")
    config = tmp_path / "hookflash.toml"
    config.write_text(
        'data_dir = "data"\nsweep_interval_s = 1\n[snmp]\nenabled = false\n'
        f'[mqtt]\nenabled = true\nport = {mosquitto.port}\nclient_id = "hf-nohooks"\n'
    )
    args = [sys.executable, "-m", "collector.cli.main", "run", "-c", str(config)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        eventually(lambda: mosquitto.subscribed_topics("hf-nohooks") != [], what="service subscribed")
        revoked = hookflash("accounts", "revoke", GONE, "--reason", REASON, "--data-dir", data)
        assert revoked.returncode == 0, revoked.stderr
        assert "confirmed by 1 running collector" in revoked.stdout
        eventually(lambda: _forgotten(data), timeout=15, what="a sweep forgot the account")
        again = hookflash("accounts", "revoke", GONE, "--data-dir", data)
        assert again.returncode == 2 and "the registry forgot it on" in again.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    raw = b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())
    assert GONE.encode() not in raw and phone.id.encode() not in raw and b"Jane Q." not in raw
    assert KEPT.encode() in raw
