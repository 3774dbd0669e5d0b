"""paho's client, reading the socket in large chunks and decoding plain PUBLISH packets
itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

# A plain PUBLISH handed over: topic (bytes, as sent), payload, QoS, packet id (0 at QoS 0).
# The receiver answers whether to go on reading (False: stop, the rest stays buffered).
PlainReceiver = Callable[[bytes, bytes, int, int], bool]
_PUBLISH = 0x30
_MAX_PER_READ = 1000  # packets taken from the buffer per loop_read call


def plain_publish(command: int, body: bytes | bytearray, v5: bool) -> tuple[bytes, bytes, int, int] | None:
    """(topic, payload, qos, mid) of a plain PUBLISH: QoS 0 or 1, a topic, and under MQTT 5
    no properties (what devices send). None for anything else, which paho decodes."""
    qos = (command & 0x06) >> 1
    if qos > 1 or len(body) < 2:
        return None
    end = 2 + (body[0] << 8 | body[1])
    header = end + (2 if qos else 0)
    if end == 2 or len(body) < header + v5 or (v5 and body[header] != 0):
        return None
    mid = body[end] << 8 | body[end + 1] if qos else 0
    return bytes(body[2:end]), bytes(body[header + v5 :]), qos, mid


class BufferedClient(mqtt.Client):
    """paho reads every packet with three or more small recv() calls (type byte, each length
    byte, body): one system call each. This reads the socket in large chunks and serves
    paho's small reads from memory. What it holds is invisible to the selector, so the
    subscriber's reader comes back for it (`buffered`) on the loop's next turn.

    Plain PUBLISH packets (see `plain_publish`) are decoded here. With `on_plain` set, every
    complete one in the buffer goes straight to it, without paho's per-message machinery
    (its packet state, an MQTTMessage with a lock of its own, a `Properties` object with
    name tables under MQTT 5, the topic matcher): that machinery was half the receiving
    loop's time in bench/mqtt_ingest.py. Anything else (QoS 2, properties, an empty topic,
    paho logging on) goes through paho's own path; a plain one that paho had to read (cut by
    the end of the buffer) still goes to `on_plain`. `tests/unit/test_mqtt_fast_publish.py`
    holds what `on_plain` gets equal to what paho's `on_message` gets, on generated packets
    and streams."""

    _CHUNK = 256 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rdata = b""
        self._rpos = 0
        self.on_plain: PlainReceiver | None = None

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

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """The plain PUBLISH packets complete in the buffer, then (or when there are none)
        one packet through paho, which reads the socket when the buffer is empty."""
        plain = self._in_packet["command"] == 0 and self._rpos < len(self._rdata) and self._takes_plain()
        if plain and self._take_plain():
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super().loop_read(max_packets)

    def _takes_plain(self) -> bool:
        return self.on_plain is not None and self.on_log is None and self._logger is None

    def _take_plain(self) -> int:
        """Hand the complete plain PUBLISH packets at the buffer's head to `on_plain`; stop
        at anything else, at a packet not wholly buffered, or when it says stop."""
        receiver = self.on_plain
        assert receiver is not None
        data, pos, size = self._rdata, self._rpos, len(self._rdata)
        v5 = self._protocol == mqtt.MQTTv5
        manual_ack = self._manual_ack
        taken = 0
        while pos < size and taken < _MAX_PER_READ:
            command = data[pos]
            if command & 0xF0 != _PUBLISH:
                break
            length, mult, i = 0, 1, pos + 1
            while i < size and i - pos <= 4:
                byte = data[i]
                length += (byte & 0x7F) * mult
                mult <<= 7
                i += 1
                if byte < 0x80:
                    break
            else:
                break  # the length is cut off, or longer than MQTT allows: paho's
            if i + length > size:
                break
            plain = plain_publish(command, data[i : i + length], v5)
            if plain is None:
                break
            pos = self._rpos = i + length
            taken += 1
            topic, payload, qos, mid = plain
            go_on = receiver(topic, payload, qos, mid)
            if qos and not manual_ack:
                self._send_puback(mid)
            if not go_on:
                break
        return taken

    def _handle_publish(self) -> MQTTErrorCode:
        """A PUBLISH that paho read itself (cut by the buffer's end): a plain one goes to
        `on_plain` all the same."""
        command, packet = self._in_packet["command"], self._in_packet["packet"]
        plain = plain_publish(command, packet, self._protocol == mqtt.MQTTv5) if self._takes_plain() else None
        if plain is None:
            return super()._handle_publish()
        assert self.on_plain is not None
        topic, payload, qos, mid = plain
        self.on_plain(topic, payload, qos, mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS if qos == 0 or self._manual_ack else self._send_puback(mid)
