"""MQTT subscriber on paho-mqtt 2, bridged to the asyncio loop.

paho's network loop runs on the asyncio loop through its socket callbacks (add_reader /
add_writer); only the blocking connect runs in a worker thread. Each message is handed, as
it arrived, to the intake on the loop; at QoS 1 it is acknowledged when the intake settles
it (queued for writing, quarantined, or dropped on purpose).
Default topic scheme: `<device topic>/<kind>`, where the device topic is the device's registry
address (by convention `hookflash/<device id>`). In `per-device` mode hookflash
subscribes only to the topics of devices it may collect from, so the broker never even
sends it data of other devices; in `wildcard` mode it subscribes to one filter, and the
intake drops what no provisioned device sent.
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

from collector.config import MqttConfig
from collector.core.backoff import Backoff
from collector.core.interfaces import Intake, SourceContext, Verdict
from collector.core.records import Ack, Received
from collector.sources.mqtt.client import BufferedClient
from provisioning.events import EventType, LifecycleEvent
from provisioning.models import Transport

log = logging.getLogger(__name__)
_SUBSCRIBE_CHUNK = 100
_READ_BURST = 100  # messages (and reads) per turn of the event loop


# Two levels below the device topic, so `<device topic>/+` never matches our own commands.
CONTROL_SUFFIX = "cmd/diagnostic"


class MqttSubscriber:
    name = "mqtt"

    def __init__(self, config: MqttConfig) -> None:
        self._config = config
        self._context: SourceContext | None = None
        self._intake: Intake | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._topic_of: dict[str, str] = {}  # device id -> its topic root
        self._subscribed: set[str] = set()
        # Set once connected and every subscription of this connection is acknowledged
        # (SUBACK): from then on the broker sends what the filters match.
        self.connected = asyncio.Event()
        self._unacknowledged: set[int] = set()
        self._v5 = config.protocol == "5"
        self._manual_ack = config.qos == 1
        self._client = BufferedClient(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            clean_session=None if self._v5 else not config.persistent_session,
            manual_ack=self._manual_ack,
        )
        if config.username:
            self._client.username_pw_set(config.username, config.resolved_password())
        if config.tls:
            # Verifies the server certificate against ca_file (or the system's CA certificates).
            self._client.tls_set(
                ca_certs=str(config.ca_file) if config.ca_file else None,
                certfile=str(config.client_cert) if config.client_cert else None,
                keyfile=str(config.client_key) if config.client_key else None,
            )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_plain = self._on_plain
        self._client.on_subscribe = self._on_subscribe
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
        self._budget = _READ_BURST  # messages left in this turn of the loop
        self._received_at = datetime.now(UTC)  # when the read that is being handed over began
        self._paused = False  # reading stopped until the pipeline has room (backpressure)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, context: SourceContext) -> None:
        self._context, self._intake = context, context.intake
        self._stats = context.stats
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._topic_of = {d.id: d.address for d in context.devices(Transport.MQTT)}
        self._keeper = asyncio.create_task(self._keep_connected(), name="mqtt-connection")

    async def stop(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        if self._socket is not None:
            self._client.disconnect()
            self._client.loop_write()  # send DISCONNECT now: the loop will not come back to it

    @property
    def _ctx(self) -> SourceContext:
        assert self._context is not None, "the source has not been started"
        return self._context

    # -- paho on this event loop ---------------------------------------------------------------
    # paho's network loop runs here (the socket callbacks below), not in a thread of its own:
    # messages are handed to the intake and acknowledged on the loop that received them, with
    # no hand-over between threads.

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
        backoff = Backoff(first_s=1.0, cap_s=30.0)
        while True:
            if self._socket is None:
                if self._refused:  # the last CONNACK said no (e.g. wrong password): back off too
                    self._refused = False
                    await asyncio.sleep(backoff.next())
                try:
                    await asyncio.to_thread(self._connect)
                    if not self._refused:
                        backoff.reset()
                except Exception as exc:  # refused, unreachable, TLS failure, bad address
                    delay = backoff.next()
                    log.warning(
                        "cannot connect to MQTT broker %s:%d (%s); retrying in %.0fs",
                        self._config.host,
                        self._config.port,
                        type(exc).__name__,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
            self._client.loop_misc()
            intake = self._intake
            if self._redeliver_later and intake is not None and not intake.saturated and self._socket:
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
        """The socket's reader callback. Nothing may escape it: asyncio would log the
        exception and paho would meet the same bytes again, so a failure here (a bug, or
        something paho could not take) is logged and the connection dropped and made anew;
        at QoS 1 the broker then redelivers whatever was not acknowledged."""
        try:
            self._read_burst()
        except Exception:
            self._ctx.stats.source_faults += 1
            log.exception("reading from the MQTT broker failed; reconnecting")
            self._drop_connection()

    def _drop_connection(self) -> None:
        """What was read may be half a packet: forget it, end the connection the way paho
        does, and let `_keep_connected` make a new one."""
        self._client.drop_buffer()
        try:
            self._client.disconnect()
            self._client.loop_write()
        except Exception:
            log.debug("disconnecting after a failed read failed too", exc_info=True)

    def _read_burst(self) -> None:
        """Read up to a burst of messages, then let the loop's other work (the writer, a
        stop) run. Bytes already in the client's buffer, or decrypted by TLS, are invisible
        to the selector: if some are left, come back for them on the loop's next turn (one
        such call pending at most, or they would multiply and crowd out everything else)."""
        client, intake = self._client, self._intake
        assert intake is not None
        self._budget = _READ_BURST
        for _ in range(_READ_BURST):
            if intake.nearly_full:
                self._pause_reading()
                return
            self._received_at = datetime.now(UTC)  # one clock reading per read, not per message
            client.loop_read()
            sock = self._socket
            if sock is None or not (client.buffered or (hasattr(sock, "pending") and sock.pending())):
                return
            if self._budget <= 0:
                break
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
        assert self._loop is not None and self._intake is not None
        self._paused = True
        self._loop.remove_reader(self._fd)
        self._intake.when_room(self._resume_reading)

    def _resume_reading(self) -> None:
        self._paused = False
        if self._socket is not None and self._loop is not None:
            self._loop.add_reader(self._fd, self._read)
            self._read_later()

    def on_event(self, event: LifecycleEvent) -> None:
        """Drop subscriptions of stopped accounts; add those of new or reactivated devices;
        tell a device when its troubleshooting window opens or closes."""
        ctx = self._ctx
        if event.device_id is not None:
            touched = [event.device_id]
            before = self._filters_of(touched)
            self._update_device(event.device_id)
            if event.type is EventType.DEVICE_DEBUG_WINDOW:
                self._send_debug_control(event.device_id)
                return
        else:
            touched = [d for d in self._topic_of if self._account_of(d) == event.account_id]
            before = self._filters_of(touched)
        if self._config.subscribe != "per-device" or not self._client.is_connected():
            return  # on (re)connect every wanted filter is subscribed afresh
        wanted = {f"{self._topic_of[d]}/+" for d in touched if d in self._topic_of and ctx.may_collect(d)}
        stale = {f for f in before if f not in wanted and f in self._subscribed}
        if stale:
            self._client.unsubscribe(sorted(stale))
            self._subscribed.difference_update(stale)
        self._subscribe(sorted(wanted - self._subscribed))

    def _account_of(self, device_id: str) -> str | None:
        device = self._ctx.device(device_id)
        return device.account_id if device is not None else None

    def _filters_of(self, device_ids: list[str]) -> set[str]:
        return {f"{self._topic_of[d]}/+" for d in device_ids if d in self._topic_of}

    def _send_debug_control(self, device_id: str) -> None:
        """Retained, so a device that is offline now learns it when it reconnects."""
        device = self._ctx.device(device_id)
        if device is None or device.transport is not Transport.MQTT:
            return
        until = device.debug_until
        body = {"diagnostic": until is not None, "until": until.timestamp() if until else None}
        self._client.publish(f"{device.address}/{CONTROL_SUFFIX}", json.dumps(body), qos=1, retain=True)

    # -- topic bookkeeping ---------------------------------------------------------------------

    def _update_device(self, device_id: str) -> None:
        """One device changed: update only its entry (bulk imports stay linear)."""
        self._topic_of.pop(device_id, None)
        device = self._ctx.device(device_id)
        if device is not None and device.transport is Transport.MQTT:
            self._topic_of[device_id] = device.address

    def _wanted_filters(self) -> list[str]:
        if self._config.subscribe == "wildcard":
            group = self._config.shared_group
            return [
                f"$share/{group}/{self._config.wildcard_filter}" if group else self._config.wildcard_filter
            ]
        may_collect = self._ctx.may_collect
        return [f"{topic}/+" for device_id, topic in self._topic_of.items() if may_collect(device_id)]

    def _subscribe(self, filters: list[str]) -> None:
        for start in range(0, len(filters), _SUBSCRIBE_CHUNK):
            chunk = filters[start : start + _SUBSCRIBE_CHUNK]
            wanted: list[tuple[str, int]] = [(f, self._config.qos) for f in chunk]
            _result, mid = self._client.subscribe(wanted)
            if mid is not None:
                self._unacknowledged.add(mid)
            self._subscribed.update(chunk)

    # -- paho callbacks ------------------------------------------------------------------------

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
        """A message paho decoded itself (QoS 2, MQTT 5 properties): as any other."""
        self._on_plain(message._topic, bytes(message.payload), message.qos, message.mid)

    def _on_plain(self, topic: bytes, payload: bytes, qos: int, mid: int) -> bool:
        """Hand the message to the intake; `ack` runs once it is settled. A message refused
        because the pipeline was full stays unacknowledged: fetched again after a reconnect.
        One that cannot even be handed over (a topic that is not UTF-8) is acknowledged
        and counted: kept by nobody, it would come back after every reconnect. Answers
        whether the client may hand over the next one now (not when the pipeline is nearly
        full: the rest then waits in the client's buffer and the socket)."""
        stats = self._stats
        stats.messages_received += 1
        self._budget -= 1
        ack = self._acker(mid) if qos and self._manual_ack else None
        intake = self._intake
        assert intake is not None
        try:
            origin = topic.decode()
        except UnicodeDecodeError as exc:
            stats.source_faults += 1
            log.warning("an MQTT message could not be read (topic: %s); acknowledged and dropped", exc)
            if ack is not None:
                ack()
            return self._budget > 0
        verdict = intake.receive(Received("mqtt", origin, payload, self._received_at, ack))
        if verdict is Verdict.REFUSED and ack is not None:
            self._redeliver_later = True
        return self._budget > 0 and not intake.nearly_full

    # -- event loop side -----------------------------------------------------------------------

    def _resubscribe(self) -> None:
        # Subscriptions are per session: resubscribe after every (re)connect.
        self._subscribed.clear()
        self._unacknowledged.clear()
        self._subscribe(self._wanted_filters())
        if not self._unacknowledged:
            self.connected.set()

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        self._on_loop(self._subscription_acknowledged, mid)

    def _subscription_acknowledged(self, mid: int) -> None:
        if mid in self._unacknowledged:
            self._unacknowledged.discard(mid)
            if not self._unacknowledged:
                self.connected.set()

    def _acker(self, mid: int) -> Ack:
        def ack() -> None:
            self._client.ack(mid, 1)

        return ack
