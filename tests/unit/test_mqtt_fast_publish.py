"""The subscriber's own PUBLISH decoding (collector/sources/mqtt/client.py) against paho's,
on generated packets: the same message for every packet it takes, and paho's path (its
errors included) for every packet it leaves."""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from collector.sources.mqtt.client import BufferedClient


def _fields(message: mqtt.MQTTMessage) -> dict[str, Any]:
    props = message.properties
    return {
        "topic": message._topic,
        "payload": bytes(message.payload),
        "qos": message.qos,
        "mid": message.mid,
        "dup": message.dup,
        "retain": message.retain,
        "properties": None if props is None else props.json(),
    }


def _received(client: mqtt.Client, command: int, packet: bytes) -> tuple[Any, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []
    client.on_message = lambda _c, _u, m: got.append(_fields(m))
    client._in_packet = {"command": command, "packet": packet}
    try:
        rc: Any = client._handle_publish()
    except Exception as exc:
        rc = type(exc).__name__
    return rc, got


def _packet(topic: bytes, qos: int, mid: int, properties: bytes | None, payload: bytes) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    if properties is not None:
        body += bytes([len(properties)]) + properties
    return body + payload


PROPERTIES = st.sampled_from([b"", b"\x01\x01", b"\x02\x00\x00\x00\x3c", b"\x03\x00\x04json"])


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5])
@settings(max_examples=300, deadline=None)
@given(
    topic=st.binary(max_size=40),
    qos=st.integers(0, 2),
    mid=st.integers(1, 65535),
    flags=st.integers(0, 1) | st.just(9),
    properties=PROPERTIES,
    payload=st.binary(max_size=200),
    truncate=st.integers(0, 6) | st.none(),
)
def test_plain_publish_is_decoded_as_paho_decodes_it(
    protocol: int, topic: bytes, qos: int, mid: int, flags: int, properties: bytes, payload: bytes,
    truncate: int | None,
) -> None:
    command = 0x30 | qos << 1 | flags
    packet = _packet(topic, qos, mid, properties if protocol == mqtt.MQTTv5 else None, payload)
    if truncate is not None:
        packet = packet[:truncate]
    ours = BufferedClient(CallbackAPIVersion.VERSION2, protocol=protocol)
    theirs = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    for client in (ours, theirs):
        client.manual_ack_set(True)  # no PUBACK is sent: there is no socket here
    assert _received(ours, command, packet) == _received(theirs, command, packet)


def test_devices_plain_messages_take_the_fast_path() -> None:
    client = BufferedClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    packet = _packet(b"hookflash/805ec0000001/signal", 1, 7, b"", b'{"wifi": {"rssi": -40}}')
    message = client._plain_publish(0x32, packet)
    assert message is not None and message.topic == "hookflash/805ec0000001/signal" and message.mid == 7
    assert client._plain_publish(0x32, _packet(b"t", 1, 7, b"\x01\x01", b"x")) is None  # properties: paho's
