"""P4 under load: while hundreds of devices produce thousands of records per second over
SNMP and MQTT, an account is revoked (or suspended) from another process. From the
acknowledgement on, no request for its devices reaches their agent, no record of it
observed or received afterwards exists in the store, and every other account loses nothing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import MqttConfig, ServiceConfig, SnmpConfig, SnmpCredential
from factories import HT812_AGENT, mqtt_device, snmp_device
from provisioning.registry import Registry
from runner import RunningService, eventually, hookflash
from services import Mosquitto, SnmpdFactory

AGENT = HT812_AGENT
VICTIM, OTHERS = "acct-victim", [f"acct-{n}" for n in range(1, 7)]
# 280 SNMP devices polled every second and 210 phones: several thousand records/s.
SNMP_PER_ACCOUNT, PHONES_PER_ACCOUNT = 40, 30


class Publisher(threading.Thread):
    """Phones publishing signal reports as fast as the test asks, counting per account."""

    def __init__(self, port: int, phones: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.phones = phones  # topic root -> account
        self.sent: dict[str, int] = dict.fromkeys(set(phones.values()), 0)
        self.sent_after: dict[str, int] = dict.fromkeys(set(phones.values()), 0)
        self.mark: float | None = None
        self.running = True
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-phones")
        self.client.max_inflight_messages_set(2000)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def run(self) -> None:
        rssi = -40
        while self.running:
            rssi = -40 if rssi < -90 else rssi - 1
            infos = []
            for root, account in self.phones.items():
                body = json.dumps({"ts": time.time(), "wifi": {"rssi": rssi, "channel": 11}})
                infos.append(self.client.publish(f"{root}/signal", body, qos=1))
                self.sent[account] += 1
                if self.mark is not None:
                    self.sent_after[account] += 1
            for info in infos:
                info.wait_for_publish(10)
            time.sleep(0.02)

    def stop(self) -> None:
        self.running = False
        self.join(10)
        self.client.disconnect()
        self.client.loop_stop()


def stored(data: Path) -> dict[str, tuple[int, int, float, float]]:
    """Per account: signal records, performance records, max observed_at, max received_at."""
    db = sqlite3.connect(data / "telemetry.db")
    rows = db.execute(
        "SELECT account_id, sum(kind = 'signal'), sum(kind = 'performance'), max(observed_at),"
        " max(received_at) FROM telemetry GROUP BY 1"
    ).fetchall()
    db.close()
    return {r[0]: (int(r[1]), int(r[2]), r[3], r[4]) for r in rows}


def table_walks(data: Path, accounts: list[str]) -> int:
    db = sqlite3.connect(data / "telemetry.db")
    marks = ",".join("?" * len(accounts))
    (walks,) = db.execute(
        "SELECT count(DISTINCT device_id) FROM telemetry WHERE kind = 'network' AND account_id IN"
        f" ({marks}) AND json_extract(fields, '$.if_index') IS NOT NULL",
        accounts,
    ).fetchone()
    db.close()
    return int(walks)


@pytest.mark.parametrize("action", ["revoke", "suspend"])
def test_stop_under_load(
    tmp_path: Path, snmpd_factory: SnmpdFactory, mosquitto: Mosquitto, action: str
) -> None:
    victim_agent, others_agent = snmpd_factory(AGENT), snmpd_factory(AGENT)
    cfg = ServiceConfig(
        data_dir=tmp_path / "data",
        # The interface table is walked once per device (GETBULK); every later poll is one GET.
        snmp=SnmpConfig(
            interval_s=1.0, timeout_s=3.0, retries=0, max_in_flight=512, intervals={"network": 3600}
        ),
        mqtt=MqttConfig(enabled=True, port=mosquitto.port, client_id="hf-load"),
        credentials={"default": SnmpCredential.model_validate({"community": "public"})},
    )
    devices, phones, n = [], {}, 0
    for account in [VICTIM, *OTHERS]:
        port = victim_agent.port if account == VICTIM else others_agent.port
        for _ in range(SNMP_PER_ACCOUNT):
            n += 1
            devices.append(snmp_device(n, account, port).model_copy(update={"profile": "grandstream-ht8xx"}))
        for _ in range(PHONES_PER_ACCOUNT):
            n += 1
            phone = mqtt_device(n, account)
            devices.append(phone)
            phones[phone.address] = account
    Registry(cfg.data_dir / "registry.db").import_devices(devices, source="test")
    others_base = others_agent.in_pkts()

    with RunningService(cfg) as running:
        eventually(lambda: len(mosquitto.subscribed_topics("hf-load")) == len(phones), what="subscriptions")
        publisher = Publisher(mosquitto.port, phones)
        publisher.start()
        time.sleep(3.0)
        before = running.stats.stored
        t0 = time.monotonic()
        time.sleep(2.0)
        rate = (running.stats.stored - before) / (time.monotonic() - t0)

        result = hookflash(
            "accounts",
            action,
            VICTIM,
            "--reason",
            "load test",
            "--format",
            "json",
            "--data-dir",
            cfg.data_dir,
        )
        assert result.returncode == 0, result.stderr
        acknowledged = time.time()
        receipt = json.loads(result.stdout)
        quiet_from = victim_agent.in_pkts()
        publisher.mark = acknowledged
        time.sleep(3.0)  # three more poll cycles, and a few thousand more messages
        assert victim_agent.requests_since(quiet_from) == 0
        publisher.stop()
        expected = {a: publisher.sent[a] for a in OTHERS}
        eventually(
            lambda: all(stored(cfg.data_dir).get(a, (0,))[0] == expected[a] for a in OTHERS),
            timeout=20,
            what="every message of the other accounts stored",
        )
    polls_failed = running.stats.polls_failed
    others_requests = others_agent.requests_since(others_base)  # after a clean stop
    print(
        f"\nload before the {action}: {rate:.0f} records/s stored; "
        f"stop confirmed in {receipt['result']['stop_latency_ms']} ms"
    )

    assert receipt["status"] == "done" and len(receipt["result"]["acknowledged_by"]) == 1
    assert publisher.sent_after[VICTIM] > 0
    after = stored(cfg.data_dir)
    if action == "revoke":
        assert VICTIM not in after
    else:
        _signal, _perf, observed, received = after[VICTIM]
        assert observed < acknowledged and received < acknowledged
        assert datetime.fromisoformat(receipt["result"]["stopped_at"]).timestamp() <= acknowledged
    # Other accounts lose nothing: every MQTT message, and for each SNMP request their agent
    # answered, a performance record (a GET) or one device's interface table (a GETBULK).
    assert polls_failed == 0
    assert sum(after[a][1] for a in OTHERS) + table_walks(cfg.data_dir, OTHERS) == others_requests
