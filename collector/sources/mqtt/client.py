"""paho's client, reading the socket in large chunks and decoding plain PUBLISH packets
itself."""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class BufferedClient(mqtt.Client):
    """paho reads every packet with three or more small recv() calls (type byte, each length
    byte, body): one system call each. This reads the socket in large chunks and serves
    paho's small reads from memory. What it holds is invisible to the selector, so the
    subscriber's reader comes back for it (`buffered`) on the loop's next turn.

    A PUBLISH at QoS 0 or 1 with a topic and no MQTT 5 properties (what devices send) is
    decoded here: paho builds a fresh `Properties` object with its name tables for every
    MQTT 5 message, about a fifth of the receiving loop's time in bench/mqtt_ingest.py.
    Its message carries one shared, empty `Properties` instead. Anything else (QoS 2,
    properties, an empty topic, paho logging on) goes through paho's own path, which
    `tests/unit/test_mqtt_fast_publish.py` holds this one equal to."""

    _CHUNK = 256 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rdata = b""
        self._rpos = 0
        self._no_properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]

    @property
    def buffered(self) -> bool:
        return self._rpos < len(self._rdata)

    def drop_buffer(self) -> None:
        self._rdata, self._rpos = b"", 0

    def _sock_recv(self, bufsize: int) -> bytes:
        data, pos = self._rdata, self._rpos
        if pos >= len(data):
            data = super()._sock_recv(self._CHUNK)  # BlockingIOError when there is nothing
            if not data:
                return data  # the broker closed the connection
            self._rdata, pos = data, 0
        self._rpos = pos + bufsize
        return data[pos : pos + bufsize]

    def _handle_publish(self) -> MQTTErrorCode:
        message = self._plain_publish(self._in_packet["command"], self._in_packet["packet"])
        if message is None:
            return super()._handle_publish()
        self._handle_on_message(message)
        return MQTTErrorCode.MQTT_ERR_SUCCESS if message.qos == 0 or self._manual_ack else self._send_puback(
            message.mid
        )

    def _plain_publish(self, command: int, packet: bytes | bytearray) -> mqtt.MQTTMessage | None:
        """The message of a plain PUBLISH (see the class), or None for paho's path."""
        qos = (command & 0x06) >> 1
        if qos > 1 or self.on_log is not None or self._logger is not None or len(packet) < 2:
            return None
        end = 2 + (packet[0] << 8 | packet[1])
        header = end + (2 if qos else 0)
        v5 = self._protocol == mqtt.MQTTv5
        if end == 2 or len(packet) < header + v5 or (v5 and packet[header] != 0):
            return None
        mid = packet[end] << 8 | packet[end + 1] if qos else 0
        message = mqtt.MQTTMessage(mid=mid, topic=bytes(packet[2:end]))
        message.dup = command & 0x08 != 0
        message.qos = qos
        message.retain = command & 0x01 != 0
        message.properties = self._no_properties if v5 else None
        message.payload = bytes(packet[header + v5 :])
        message.timestamp = mqtt.time_func()
        return message
