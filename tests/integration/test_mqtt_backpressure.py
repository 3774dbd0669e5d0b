"""Backpressure: when the store is slower than the broker, hookflash stops reading the socket
until the writer has caught up, instead of taking messages it would have to refuse. A QoS 0
flood into a small pipeline in front of a slowed-down (real) SQLite store loses nothing."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import MqttConfig, ServiceConfig, SnmpConfig
from collector.core.records import TelemetryRecord
from collector.runtime.service import Service
from factories import mqtt_device
from provisioning.registry import Registry
from runner import RunningService, eventually
from services import Mosquitto

MESSAGES = 6000
QUEUE = 2000  # records: the flood is three times what the pipeline holds


def small_and_slow(service: Service) -> None:
    service.pipeline._queue.maxsize = QUEUE
    write = service.store.sink.write

    def slow_write(records: Sequence[TelemetryRecord]) -> int:
        time.sleep(0.05)  # a store that takes its time: ~10,000 records/s at most
        return write(records)

    service.store.sink.write = slow_write  # type: ignore[method-assign]


def test_a_qos0_flood_into_a_slow_store_loses_nothing(tmp_path: Path, mosquitto: Mosquitto) -> None:
    data = tmp_path / "data"
    phones = [mqtt_device(n, f"acct-{n % 3}") for n in range(10)]
    Registry(data / "registry.db").import_devices(phones, source="test")
    cfg = ServiceConfig(
        data_dir=data,
        snmp=SnmpConfig(enabled=False),
        mqtt=MqttConfig(enabled=True, port=mosquitto.port, client_id="hf-flood", qos=0),  # type: ignore[call-arg]
    )
    with RunningService(cfg, small_and_slow) as running:
        assert running.service is not None
        subscriber = running.service.sources["mqtt"]
        eventually(subscriber.connected.is_set, what="MQTT connected")  # type: ignore[attr-defined]
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="flood")
        client.max_queued_messages_set(0)
        client.connect(mosquitto.host, mosquitto.port)
        client.loop_start()
        start = time.time()
        for i in range(MESSAGES):
            body = {"ts": start + i * 0.001, "uptime_s": i}
            client.publish(f"{phones[i % len(phones)].address}/performance", json.dumps(body), qos=0)
        client.disconnect()
        client.loop_stop()
        try:
            eventually(lambda: running.stats.stored == MESSAGES, timeout=60, what="every message stored")
        except AssertionError:
            stats = running.stats
            raise AssertionError(
                f"stored {stats.stored} of {MESSAGES}; received {stats.messages_received}, "
                f"overflow {stats.queue_overflow}, quarantined {stats.quarantined}, "
                f"faults {stats.source_faults}/{stats.intake_faults}"
            ) from None
        assert running.stats.queue_overflow == 0  # nothing refused: reading paused instead
    db = sqlite3.connect(data / "telemetry.db")
    rows = db.execute("SELECT json_extract(fields, '$.uptime_s') FROM telemetry")
    channels = sorted(int(r[0]) for r in rows)
    db.close()
    assert channels == list(range(MESSAGES))
