"""MQTT subscriber on paho-mqtt 2, bridged to the asyncio loop.

paho's network loop runs on the asyncio loop through its socket callbacks (add_reader /
add_writer); only the blocking connect runs in a worker thread. Messages are decoded, gated
and, at QoS 1, acknowledged after they are stored, all on the loop.
Default topic scheme: `<device topic>/<kind>`, where the device topic is the device's registry
address (by convention `hookflash/<device id>`). In `per-device` mode hookflash
subscribes only to active devices' topics, so the broker never even sends it data of
other devices; in `wildcard` mode it subscribes to one filter and drops the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from collector.config import MqttConfig
from collector.decode.mqtt import PayloadRejected, QuarantineEntry, decode_mqtt, parse_payload
from collector.pipeline import Pipeline
from collector.profiles import DeviceProfile, ProfileError, ProfileSet
from provisioning.events import EventType, LifecycleEvent
from provisioning.models import Device, Transport, normalize_mac

log = logging.getLogger(__name__)
_SUBSCRIBE_CHUNK = 100
_READ_BURST = 100  # packets per turn of the event loop


def _nothing() -> None:
    """The acknowledgement of a QoS 0 message (paho sends none)."""


class _BufferedClient(mqtt.Client):
    """paho reads every packet with three or more small recv() calls (type byte, each length
    byte, body): one system call each. This reads the socket in large chunks and serves
    paho's small reads from memory. What it holds is invisible to the selector, so the
    subscriber's reader comes back for it (`buffered`) on the loop's next turn."""

    _CHUNK = 256 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rdata = b""
        self._rpos = 0

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


# Two levels below the device topic, so `<device topic>/+` never matches our own commands.
CONTROL_SUFFIX = "cmd/diagnostic"


class MqttSubscriber:
    def __init__(self, pipeline: Pipeline, profiles: ProfileSet, config: MqttConfig) -> None:
        self._pipeline = pipeline
        self._profiles = profiles
        self._config = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._by_topic: dict[str, Device] = {}
        self._profile_cache: dict[tuple[str, str, str], DeviceProfile] = {}
        self._topic_of: dict[str, str] = {}
        self._subscribed: set[str] = set()
        self.connected = asyncio.Event()
        self._v5 = config.protocol == "5"
        self._manual_ack = config.qos == 1
        self._client = _BufferedClient(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            clean_session=None if self._v5 else not config.persistent_session,
            manual_ack=self._manual_ack,
        )
        if config.username:
            self._client.username_pw_set(config.username, config.resolved_password())
        if config.tls:
            # Verifies the server certificate against ca_file (or the system store).
            self._client.tls_set(
                ca_certs=str(config.ca_file) if config.ca_file else None,
                certfile=str(config.client_cert) if config.client_cert else None,
                keyfile=str(config.client_key) if config.client_key else None,
            )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_socket_open = self._on_socket_open
        self._client.on_socket_close = self._on_socket_close
        self._client.on_socket_register_write = self._on_socket_register_write
        self._client.on_socket_unregister_write = self._on_socket_unregister_write
        self._socket: Any = None
        self._redeliver_later = False
        self._refused = False  # the broker answered CONNACK with a failure (e.g. not authorized)
        self._fd = -1
        self._loop_thread = -1
        self._keeper: asyncio.Task[None] | None = None
        self._read_scheduled = False
        self._paused = False  # reading stopped until the pipeline has room (backpressure)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._refresh_devices()
        self._keeper = asyncio.create_task(self._keep_connected(), name="mqtt-connection")

    async def stop(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        if self._socket is not None:
            self._client.disconnect()
            self._client.loop_write()  # send DISCONNECT now: the loop will not come back to it

    # -- paho on this event loop ---------------------------------------------------------------
    # paho's network loop runs here (the socket callbacks below), not in a thread of its own:
    # messages are decoded, gated and acknowledged on the loop that received them, with no
    # hand-over between threads.

    def _connect(self) -> None:
        """Blocking TCP (and TLS) connect: run in a worker thread, never on the loop."""
        config = self._config
        if self._v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = config.session_expiry_s if config.persistent_session else 0
            properties.ReceiveMaximum = config.receive_maximum
            self._client.connect(
                config.host,
                config.port,
                config.keepalive_s,
                clean_start=not config.persistent_session,
                properties=properties,
            )
        else:
            self._client.connect(config.host, config.port, config.keepalive_s)

    async def _keep_connected(self) -> None:
        """Connect, keep the session alive (pings), and reconnect with capped backoff."""
        delay = 1.0
        while True:
            if self._socket is None:
                if self._refused:  # the last CONNACK said no (e.g. wrong password): back off too
                    self._refused = False
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                try:
                    await asyncio.to_thread(self._connect)
                    if not self._refused:
                        delay = 1.0
                except Exception as exc:  # refused, unreachable, TLS failure, bad address
                    log.warning(
                        "cannot connect to MQTT broker %s:%d (%s); retrying in %.0fs",
                        self._config.host,
                        self._config.port,
                        type(exc).__name__,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
            self._client.loop_misc()
            if self._redeliver_later and not self._pipeline.saturated and self._socket is not None:
                # Messages refused while the pipeline was full were never acknowledged: the
                # broker sends them again when the (persistent) session resumes.
                self._redeliver_later = False
                log.warning("pipeline was full: reconnecting so the broker redelivers what was refused")
                self._client.disconnect()
            await asyncio.sleep(1.0)

    def _on_socket_open(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        self._client.drop_buffer()  # nothing of an earlier connection may be read as this one's
        self._socket, self._fd = sock, sock.fileno()
        self._on_loop(self._watch, self._fd, False)

    def _on_socket_close(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        self._socket = None
        self._on_loop(self._forget_socket, self._fd)

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Run now when on the loop's thread (paho's callbacks mostly are); else hand over.
        Connecting happens in a worker thread, so the first callbacks come from there."""
        assert self._loop is not None
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _watch(self, fd: int, write: bool) -> None:
        assert self._loop is not None
        if self._socket is None or fd != self._fd:
            return  # closed meanwhile
        if write:
            self._loop.add_writer(fd, self._client.loop_write)
        elif not self._paused:  # else reading starts when the pipeline has room
            self._loop.add_reader(fd, self._read)

    def _forget_socket(self, fd: int) -> None:
        # By file descriptor: the socket object is already closed (its fileno() is -1).
        assert self._loop is not None
        self._loop.remove_reader(fd)
        self._loop.remove_writer(fd)

    def _on_socket_register_write(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        self._on_loop(self._watch, self._fd, True)

    def _on_socket_unregister_write(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        self._on_loop(self._unwatch_write, self._fd)

    def _unwatch_write(self, fd: int) -> None:
        assert self._loop is not None
        self._loop.remove_writer(fd)

    def _read(self) -> None:
        """Read up to a burst of packets, then let the loop's other work (the writer) run.
        Bytes already in the client's buffer, or decrypted by TLS, are invisible to the
        selector: if some are left, come back for them on the loop's next turn (one such
        call pending at most, or they would multiply and crowd out everything else)."""
        client = self._client
        for _ in range(_READ_BURST):
            if self._pipeline.nearly_full:
                self._pause_reading()
                return
            client.loop_read()
            sock = self._socket
            if sock is None or not (client.buffered or (hasattr(sock, "pending") and sock.pending())):
                return
        if not self._read_scheduled:
            assert self._loop is not None
            self._read_scheduled = True
            self._loop.call_soon(self._read_later)

    def _read_later(self) -> None:
        self._read_scheduled = False
        if not self._paused:
            self._read()

    def _pause_reading(self) -> None:
        """Backpressure: the pipeline is nearly full, so leave the rest in the socket (and
        the broker) instead of taking messages that would have to be refused. TCP flow
        control holds the broker back until the writer has caught up."""
        if self._paused:
            return
        assert self._loop is not None
        self._paused = True
        self._loop.remove_reader(self._fd)
        self._pipeline.when_room(self._resume_reading)

    def _resume_reading(self) -> None:
        self._paused = False
        if self._socket is not None and self._loop is not None:
            self._loop.add_reader(self._fd, self._read)
            self._read_later()

    def on_event(self, event: LifecycleEvent) -> None:
        """Drop subscriptions of stopped accounts; add those of new or reactivated devices;
        tell a device when its troubleshooting window opens or closes."""
        if event.device_id is not None:
            touched = [event.device_id]
            before = self._filters_of(touched)
            self._update_device(event.device_id)
            if event.type is EventType.DEVICE_DEBUG_WINDOW:
                self._send_debug_control(event.device_id)
                return
        else:
            touched = [d.id for d in self._by_topic.values() if d.account_id == event.account_id]
            before = self._filters_of(touched)
        if self._config.subscribe != "per-device" or not self._client.is_connected():
            return  # on (re)connect every wanted filter is subscribed afresh
        gate = self._pipeline.gate
        wanted = {f"{self._topic_of[d]}/+" for d in touched if d in self._topic_of and gate.allows(d)}
        stale = {f for f in before if f not in wanted and f in self._subscribed}
        if stale:
            self._client.unsubscribe(sorted(stale))
            self._subscribed.difference_update(stale)
        self._subscribe(sorted(wanted - self._subscribed))

    def _filters_of(self, device_ids: list[str]) -> set[str]:
        return {f"{self._topic_of[d]}/+" for d in device_ids if d in self._topic_of}

    def _send_debug_control(self, device_id: str) -> None:
        """Retained, so a device that is offline now learns it when it reconnects."""
        device = self._pipeline.gate.device(device_id)
        if device is None or device.transport is not Transport.MQTT:
            return
        until = device.debug_until
        body = {"diagnostic": until is not None, "until": until.timestamp() if until else None}
        self._client.publish(f"{device.address}/{CONTROL_SUFFIX}", json.dumps(body), qos=1, retain=True)

    # -- topic bookkeeping ---------------------------------------------------------------------

    def _refresh_devices(self) -> None:
        gate = self._pipeline.gate
        self._by_topic = {d.address: d for d in gate.devices() if d.transport is Transport.MQTT}
        self._topic_of = {d.id: topic for topic, d in self._by_topic.items()}

    def _update_device(self, device_id: str) -> None:
        """One device changed: update only its entries (bulk imports stay linear)."""
        old = self._topic_of.pop(device_id, None)
        if old is not None:
            self._by_topic.pop(old, None)
        device = self._pipeline.gate.device(device_id)
        if device is not None and device.transport is Transport.MQTT:
            self._by_topic[device.address] = device
            self._topic_of[device_id] = device.address

    def _wanted_filters(self) -> list[str]:
        if self._config.subscribe == "wildcard":
            group = self._config.shared_group
            return [
                f"$share/{group}/{self._config.wildcard_filter}" if group else self._config.wildcard_filter
            ]
        gate = self._pipeline.gate
        return [f"{topic}/+" for topic, d in self._by_topic.items() if gate.allows(d.id)]

    def _subscribe(self, filters: list[str]) -> None:
        for start in range(0, len(filters), _SUBSCRIBE_CHUNK):
            chunk = filters[start : start + _SUBSCRIBE_CHUNK]
            wanted: list[tuple[str, int]] = [(f, self._config.qos) for f in chunk]
            self._client.subscribe(wanted)
            self._subscribed.update(chunk)

    # -- paho thread callbacks -----------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._refused = bool(reason.is_failure)
        if reason.is_failure:
            log.error(
                "MQTT broker %s:%d refused connection: %s",
                self._config.host,
                self._config.port,
                reason,
            )
            return
        log.info("connected to MQTT broker %s:%d", self._config.host, self._config.port)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._resubscribe)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.connected.clear)
        if reason.is_failure:
            log.warning("MQTT connection lost (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        ack = self._acker(message.mid) if message.qos and self._manual_ack else _nothing
        self._receive(message.topic, bytes(message.payload), ack)

    # -- event loop side -----------------------------------------------------------------------

    def _resubscribe(self) -> None:
        # Subscriptions are per session: resubscribe after every (re)connect.
        self._subscribed.clear()
        self._subscribe(self._wanted_filters())
        self.connected.set()

    def _acker(self, mid: int) -> Callable[[], None]:
        def ack() -> None:
            self._client.ack(mid, 1)

        return ack

    def _receive(self, topic: str, payload: bytes, ack: Callable[[], None]) -> None:
        """Decode, gate and hand on one message. `ack` is called once it is settled: stored,
        quarantined, or dropped on purpose (not provisioned, account not active)."""
        stats = self._pipeline.stats
        stats.messages_received += 1
        now = datetime.now(UTC)
        try:
            device, kind, document = self._locate(topic, payload)
        except PayloadRejected:
            device, kind, document = None, "", None  # no device to blame: nothing is kept (P1)
        if device is None:
            stats.dropped_not_provisioned += 1  # P1: not stored, not even quarantined
            ack()
            return
        if not self._pipeline.gate.allows(device.id):
            stats.dropped_inactive += 1
            ack()
            return
        try:
            profile = self._profile(device)
            observation = decode_mqtt(
                profile, device.id, kind, payload, now, self._config.max_payload_bytes, document
            )
        except PayloadRejected as exc:
            self._pipeline.quarantine(
                QuarantineEntry.of("mqtt", topic, payload, exc.reason, now, device.id, device.account_id), ack
            )
            return
        except ProfileError as exc:
            self._pipeline.quarantine(
                QuarantineEntry.of("mqtt", topic, payload, str(exc), now, device.id, device.account_id), ack
            )
            return
        try:
            accepted = self._pipeline.submit(observation, ack)
        except ValidationError as exc:  # the record itself failed validation
            reason = f"invalid record: {exc.errors()[0]['msg']}"[:300]
            self._pipeline.quarantine(
                QuarantineEntry.of("mqtt", topic, payload, reason, now, device.id, device.account_id), ack
            )
            return
        if not accepted and self._pipeline.saturated and ack is not _nothing:
            self._redeliver_later = True  # unacknowledged: fetched again after a reconnect

    def _locate(self, topic: str, payload: bytes) -> tuple[Device | None, str, dict[str, Any] | None]:
        """The provisioned device a message is from, its kind, and the payload if it had to
        be parsed to tell (device_id_from = "payload")."""
        mode = self._config.device_id_from
        if mode == "topic-root":
            device_topic, _, kind = topic.rpartition("/")
            return self._by_topic.get(device_topic), kind, None
        if mode == "topic-level":
            levels = topic.split("/")
            level = self._config.device_id_level
            raw = levels[level] if level < len(levels) - 1 else ""
            return self._device_by_mac(raw), levels[-1], None
        document = parse_payload(payload, self._config.max_payload_bytes)
        named = document.get("kind")
        kind = named if isinstance(named, str) else ""
        return self._device_by_mac(document.get("device_id")), kind, document

    def _device_by_mac(self, raw: object) -> Device | None:
        try:
            device_id = normalize_mac(str(raw)) if raw else None
        except ValueError:
            return None
        return self._pipeline.gate.device(device_id) if device_id else None

    def _profile(self, device: Device) -> DeviceProfile:
        key = (device.profile, device.vendor, device.model)
        cached = self._profile_cache.get(key)
        if cached is not None:
            return cached
        if device.profile:
            found: DeviceProfile | None = self._profiles.get(device.profile)
        else:
            found = self._profiles.by_model(device.vendor, device.model)
        if found is None:
            raise ProfileError(f"no profile for {device.vendor} {device.model}; set one in the registry")
        self._profile_cache[key] = found
        return found
