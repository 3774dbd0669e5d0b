"""The event loop never waits on SQLite: with registry.db locked by another process for
3 s (as a long import would), MQTT and SNMP collection of other devices goes on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import MqttConfig, ServiceConfig, SnmpConfig, SnmpCredential
from collector.sinks.sqlite import TelemetryQueries
from factories import HT812_AGENT, mqtt_device, snmp_device
from provisioning.registry import Registry
from runner import RunningService, eventually
from services import Mosquitto, SnmpdFactory

LOCK_S = 3.0
# The write lock a long import holds (in WAL mode readers still read; every write, such as
# the collector's heartbeat every second, waits up to the 5 s busy timeout): any registry
# write the collector made on its event loop would stall collection.
HOLD = f"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO audit (at, action, detail) VALUES ('now', 'test.lock', '{{}}')")
print("locked", flush=True)
time.sleep({LOCK_S})
db.execute("ROLLBACK")
"""


def test_a_locked_registry_holds_up_no_collection(
    tmp_path: Path, mosquitto: Mosquitto, snmpd_factory: SnmpdFactory
) -> None:
    agent = snmpd_factory(HT812_AGENT)
    cfg = ServiceConfig(
        data_dir=tmp_path / "data",
        snmp=SnmpConfig(interval_s=0.2, timeout_s=0.5, retries=0),
        credentials={"default": SnmpCredential.model_validate({"community": "public"})},
        mqtt=MqttConfig(enabled=True, port=mosquitto.port, client_id="hf-locked"),
    )
    phone, ata = mqtt_device(1, "acct-a"), snmp_device(2, "acct-b", agent.port)
    Registry(cfg.data_dir / "registry.db").import_devices([phone, ata], source="test")
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="locked-publisher")
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.loop_start()
    store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")
    with RunningService(cfg) as running:
        eventually(lambda: mosquitto.subscribed_topics("hf-locked") != [], what="subscribed")
        eventually(lambda: store.query(device_id=ata.id) != [], what="a first poll")
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(cfg.data_dir / "registry.db")], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        locked_at = time.time()
        sent: list[float] = []
        while time.time() < locked_at + LOCK_S - 0.8:
            sent.append(time.time())
            body = {"ts": sent[-1], "uptime_s": len(sent)}
            publisher.publish(f"{phone.address}/performance", json.dumps(body), qos=1).wait_for_publish(2)
            time.sleep(0.1)
        time.sleep(max(0.0, locked_at + LOCK_S - 0.3 - time.time()))  # the writer's flush
        window = (locked_at + 0.2, locked_at + LOCK_S - 0.8)

        def stored_during(device_id: str) -> list[float]:
            times = [r.observed_at.timestamp() for r in store.query(device_id=device_id)]
            return [t for t in times if window[0] <= t <= window[1]]

        # Read while the registry is still locked: neither source waited for it.
        mqtt_during, snmp_during = stored_during(phone.id), stored_during(ata.id)
        still_locked = holder.poll() is None
        holder.wait(10)
        assert still_locked, "the lock ended before the check: the test proves nothing"
        expected = [t for t in sent if window[0] <= t <= window[1]]
        assert len(expected) >= 15 and sorted(mqtt_during) == pytest.approx(expected, abs=0.01)
        assert len(snmp_during) >= 5, snmp_during  # polled every 0.2 s throughout
        assert running.stats.stored > 0
    publisher.disconnect()
    publisher.loop_stop()
