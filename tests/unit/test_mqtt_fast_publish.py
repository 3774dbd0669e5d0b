"""The subscriber's own PUBLISH decoding (collector/sources/mqtt/client.py) against paho's,
on generated packets: the same topic, payload, QoS and packet id for every packet it
takes, and paho's path (its errors included) for every packet it leaves; and on generated
streams read from a real socket in chunks of any size: the same messages in the same order."""

from __future__ import annotations

import socket
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from collector.sources.mqtt.client import BufferedClient, plain_publish

Message = tuple[bytes, bytes, int, int]  # topic, payload, QoS, packet id: what the subscriber uses


def _collect(client: mqtt.Client, got: list[Message]) -> None:
    """Every message `client` hands over, whichever way: paho's `on_message` or `on_plain`."""
    client.on_message = lambda _c, _u, m: got.append((m._topic, bytes(m.payload), m.qos, m.mid))
    if isinstance(client, BufferedClient):
        client.on_plain = lambda *message: got.append(message) is None


def _received(client: mqtt.Client, command: int, packet: bytes) -> tuple[Any, list[Message]]:
    got: list[Message] = []
    _collect(client, got)
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
    packet = _packet(b"hookflash/805ec0000001/signal", 1, 7, b"", b'{"wifi": {"rssi": -40}}')
    assert plain_publish(0x32, packet, True) == (
        b"hookflash/805ec0000001/signal", b'{"wifi": {"rssi": -40}}', 1, 7
    )
    assert plain_publish(0x32, _packet(b"t", 1, 7, b"\x01\x01", b"x"), True) is None  # properties: paho's


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _drain(client: mqtt.Client, stream: bytes) -> list[Message]:
    """Everything `client` hands over when it reads `stream` from a socket, then EOF."""
    got: list[Message] = []
    _collect(client, got)
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(stream)
        theirs.shutdown(socket.SHUT_WR)
        ours.setblocking(False)
        client._sock = ours  # type: ignore[assignment]
        for _ in range(4 * len(stream) + 10):
            if client._sock is None:
                break
            client.loop_read()
    finally:
        ours.close()
        theirs.close()
    return got


MESSAGES = st.lists(
    st.tuples(
        st.binary(min_size=1, max_size=30),
        st.integers(0, 1),
        st.integers(1, 65535),
        st.sampled_from([b"", b"", b"", b"\x01\x01"]),
        st.binary(max_size=300),
    ),
    max_size=40,
)


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5])
@settings(max_examples=150, deadline=None)
@given(messages=MESSAGES, chunk=st.integers(1, 400), pings=st.sets(st.integers(0, 40)))
def test_a_stream_read_in_any_chunks_gives_what_paho_gives(
    protocol: int, messages: list[tuple[bytes, int, int, bytes, bytes]], chunk: int, pings: set[int]
) -> None:
    """Plain packets, packets with properties (paho's), PINGRESPs between them, and
    packets cut at every possible place by the end of a read."""
    stream = b""
    for n, (topic, qos, mid, properties, payload) in enumerate(messages):
        if n in pings:
            stream += b"\xd0\x00"
        body = _packet(topic, qos, mid, properties if protocol == mqtt.MQTTv5 else None, payload)
        stream += bytes([0x30 | qos << 1]) + _remaining_length(len(body)) + body
    ours = BufferedClient(CallbackAPIVersion.VERSION2, protocol=protocol)
    ours._CHUNK = chunk
    theirs = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    for client in (ours, theirs):
        client.manual_ack_set(True)  # no PUBACK is sent: the other end only writes
    expected = _drain(theirs, stream)
    assert len(expected) == len(messages)
    assert _drain(ours, stream) == expected


def test_the_receiver_can_stop_the_reading_and_nothing_is_lost() -> None:
    body = _packet(b"hookflash/1/signal", 0, 0, b"", b"{}")
    stream = (bytes([0x30, len(body)]) + body) * 10
    client = BufferedClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    got: list[bytes] = []
    client.on_plain = lambda topic, payload, qos, mid: got.append(payload) is None and len(got) % 3 != 0
    ours, theirs = socket.socketpair()
    theirs.sendall(stream)
    ours.setblocking(False)
    client._sock = ours  # type: ignore[assignment]
    client.loop_read()  # an empty buffer: paho reads the socket (and its first packet)
    client.loop_read()  # the buffered ones, up to the receiver's stop
    assert len(got) == 3 and client.buffered  # stopped, the rest kept
    while client.buffered:
        client.loop_read()
    assert len(got) == 10
    ours.close()
    theirs.close()
