"""A bare paho subscriber that only counts: bench/mqtt_ingest.py's baseline, in a process
of its own (as a user would run one), over MQTT 3.1.1 or 5.

    python bench/paho_counter.py prepare HOST PORT CLIENT_ID QOS PROTOCOL FILTER
        create the persistent session and its subscription, then leave
    python bench/paho_counter.py drain HOST PORT CLIENT_ID QOS PROTOCOL COUNT
        come back to the session, count COUNT messages, print one JSON line:
        {"count", "first_to_last_s", "connect_to_last_s"}
    python bench/paho_counter.py forget HOST PORT CLIENT_ID
        end the session, so later backlogs are not queued for it

The clock for the rate runs from the first message counted to the last (connecting is
reported apart), the way hookflash is timed.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def client_for(client_id: str, protocol: str) -> mqtt.Client:
    version = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
    if version == mqtt.MQTTv5:
        return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version)
    return mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version, clean_session=False
    )


def connect(client: mqtt.Client, host: str, port: int, protocol: str, expiry: int = 3600) -> None:
    if protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = expiry
        props.ReceiveMaximum = 1000
        client.connect(host, port, clean_start=expiry == 0, properties=props)
    else:
        client.connect(host, port)


def prepare(host: str, port: int, client_id: str, qos: int, protocol: str, topic_filter: str) -> None:
    client = client_for(client_id, protocol)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_args: subscribed.set()
    connect(client, host, port, protocol)
    client.loop_start()
    client.subscribe(topic_filter, qos=qos)
    if not subscribed.wait(10):
        raise SystemExit("no SUBACK within 10 s")
    client.disconnect()
    client.loop_stop()


def drain(host: str, port: int, client_id: str, qos: int, protocol: str, count: int) -> None:
    del qos  # the session's subscription has it
    done = threading.Event()
    seen = [0]
    first = [0.0]
    last = [0.0]

    def on_message(_c: object, _u: object, _m: object) -> None:
        seen[0] += 1
        if seen[0] == 1:
            first[0] = time.perf_counter()
        if seen[0] >= count:
            last[0] = time.perf_counter()
            done.set()

    client = client_for(client_id, protocol)
    client.on_message = on_message
    started = time.perf_counter()
    connect(client, host, port, protocol)
    client.loop_start()
    if not done.wait(600):
        raise SystemExit(f"got {seen[0]} of {count} messages")
    client.disconnect()
    client.loop_stop()
    out = {"count": count, "first_to_last_s": last[0] - first[0], "connect_to_last_s": last[0] - started}
    print(json.dumps(out))


def forget(host: str, port: int, client_id: str) -> None:
    client = client_for(client_id, "5")
    connect(client, host, port, "5", expiry=0)
    client.loop_start()
    time.sleep(0.2)
    client.disconnect()
    client.loop_stop()


def main(argv: list[str]) -> None:
    mode, host, port, client_id, *rest = argv
    if mode == "prepare":
        prepare(host, int(port), client_id, int(rest[0]), rest[1], rest[2])
    elif mode == "drain":
        drain(host, int(port), client_id, int(rest[0]), rest[1], int(rest[2]))
    elif mode == "forget":
        forget(host, int(port), client_id)
    else:
        raise SystemExit(f"unknown mode {mode!r}: prepare, drain or forget")


if __name__ == "__main__":
    main(sys.argv[1:])
