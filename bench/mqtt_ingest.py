"""MQTT ingest rate: hookflash end to end versus a bare paho subscriber that only counts.

Both drain the same kind of queued backlog from one mosquitto on loopback: N JSON
telemetry messages (~120 bytes, with a `ts`) published while the subscriber was offline,
kept for it by its persistent session. The clock runs from connect until the last
message has been counted (paho) or its record handed to the sink by hookflash's writer
(decoded, validated, gated, tagged, queued, re-checked against the gate in the writer
thread, handed to a sink that counts, and, at QoS 1, acknowledged only after that). QoS 0
and QoS 1 are measured in the same run, each against its own baseline.

The sink is the issue's measuring point ("records handed to the sink"), so the figure is
the ingest path's own; what a store then costs is measured by bench/write_path.py. For
reference the same run also reports the rate into the embedded SQLite store (`sqlite`).

Usage: python bench/mqtt_ingest.py [--quick] [--messages N]   (needs mosquitto installed)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from collector.config import MqttConfig, ServiceConfig, SnmpConfig  # noqa: E402
from collector.core.records import TelemetryRecord  # noqa: E402
from collector.runtime.service import Service  # noqa: E402
from factories import mqtt_device  # noqa: E402
from provisioning.registry import Registry  # noqa: E402
from runner import RunningService, eventually  # noqa: E402
from services import Mosquitto  # noqa: E402

PHONES = 100
FILTER = "hookflash/+/+"


def session_props() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 1000
    return props


def publish_backlog(broker: Mosquitto, topics: list[str], count: int, qos: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="backlog-publisher")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = []
    for i in range(count):
        body = json.dumps({"ts": round(time.time(), 3), "wifi": {"rssi": -40 - i % 50, "channel": i % 165}})
        infos.append(client.publish(f"{topics[i % len(topics)]}/signal", body, qos=qos))
        if len(infos) >= 5000:  # bounded: paho keeps every unsent message in memory
            for info in infos:
                info.wait_for_publish(60)
            infos.clear()
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def drop_session(broker: Mosquitto, client_id: str) -> None:
    """Connect with a clean start and no expiry: the broker forgets the session, so later
    backlogs are not also queued for a subscriber that has finished measuring."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port, clean_start=True, properties=props)
    client.loop_start()
    time.sleep(0.2)
    client.disconnect()
    client.loop_stop()


def bare_paho(broker: Mosquitto, topics: list[str], count: int, qos: int) -> float:
    client_id = f"bare-q{qos}"
    done, received = threading.Event(), [0]

    def on_message(_c: object, _u: object, _m: object) -> None:
        received[0] += 1
        if received[0] >= count:
            done.set()

    def connect() -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.on_message = on_message
        client.connect(broker.host, broker.port, clean_start=False, properties=session_props())
        return client

    client = connect()  # first visit: create the session and its subscription
    client.loop_start()
    client.subscribe(FILTER, qos=qos)
    time.sleep(0.5)
    client.disconnect()
    client.loop_stop()
    publish_backlog(broker, topics, count, qos)
    client = connect()
    started = time.perf_counter()
    client.loop_start()
    if not done.wait(300):
        raise RuntimeError(f"bare paho got {received[0]} of {count}")
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    drop_session(broker, client_id)
    return count / elapsed


class CountingSink:
    """Takes the records the writer hands it and counts them."""

    name = "counting"

    def __init__(self) -> None:
        self.count = 0

    def write(self, records: Sequence[TelemetryRecord]) -> int:
        self.count += len(records)
        return len(records)

    def erase_account(self, *_args: object) -> dict[str, int]:
        return {}

    def purge_since(self, *_args: object) -> int:
        return 0

    def last_seen(self, _account_id: str) -> dict[str, datetime]:
        return {}

    def close(self) -> None:
        pass


def counting(service: Service) -> None:
    service.pipeline.sinks = [CountingSink()]


def hookflash(
    broker: Mosquitto, work: Path, topics: list[str], count: int, qos: int, sink: str = "counting"
) -> float:
    cfg = ServiceConfig(
        data_dir=work / f"hookflash-q{qos}-{sink}",
        snmp=SnmpConfig(enabled=False),
        mqtt=MqttConfig(
            enabled=True,
            port=broker.port,
            client_id=f"hf-q{qos}-{sink}",
            subscribe="wildcard",
            wildcard_filter=FILTER,
            qos=qos,
            receive_maximum=1000,
        ),  # type: ignore[arg-type]
    )
    Registry(cfg.data_dir / "registry.db").import_devices(
        [mqtt_device(n, f"acct-{n % 10}") for n in range(PHONES)], source="bench"
    )
    with RunningService(cfg):  # first visit: the session and its subscription
        eventually(lambda: broker.subscribed_topics(f"hf-q{qos}-{sink}") == [FILTER], what="subscribed")
    publish_backlog(broker, topics, count, qos)
    started = time.perf_counter()
    with RunningService(cfg, counting if sink == "counting" else None) as running:
        eventually(
            lambda: running.stats.stored_by_kind["signal"] >= count, timeout=600, what="backlog stored"
        )
        elapsed = time.perf_counter() - started
        quarantined = running.stats.quarantined
    drop_session(broker, f"hf-q{qos}-{sink}")
    if quarantined:
        raise RuntimeError(f"{quarantined} benchmark messages were quarantined")
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (under 60 s)")
    parser.add_argument("--messages", type=int)
    args = parser.parse_args()
    count = args.messages or (30_000 if args.quick else 200_000)
    work = Path(tempfile.mkdtemp(prefix="hookflash-mqtt-bench-"))
    topics = [mqtt_device(n, "x").address for n in range(PHONES)]
    broker = Mosquitto(
        work / "mosquitto", extra=["queue_qos0_messages true", "max_inflight_messages 1000"]
    ).start()
    try:
        results = {}
        for qos in (0, 1):
            paho_rate = bare_paho(broker, topics, count, qos)
            ours = hookflash(broker, work, topics, count, qos)
            stored = hookflash(broker, work, topics, count, qos, sink="sqlite")
            results[qos] = (ours, paho_rate)
            print(
                f"QoS {qos}: hookflash {ours:,.0f} msg/s, bare paho {paho_rate:,.0f} msg/s, "
                f"ratio {ours / paho_rate:.2f}; into SQLite {stored:,.0f} msg/s, "
                f"ratio {stored / paho_rate:.2f} ({count:,} messages)",
                flush=True,
            )
        print(
            f"RESULT qos0_ratio_vs_paho={results[0][0] / results[0][1]:.2f} "
            f"qos1_ratio_vs_paho={results[1][0] / results[1][1]:.2f} "
            f"hookflash_qos0_msgs_per_s={results[0][0]:.0f}"
        )
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
