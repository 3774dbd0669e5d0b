"""MQTT subscriber on paho-mqtt 2, bridged to the asyncio loop.

paho runs its network loop in its own thread (`loop_start`); callbacks only hand the raw
message to the event loop with `call_soon_threadsafe`, where decoding and gating happen.
Topic scheme: `<device topic>/<kind>`, where the device topic is the device's registry
address (by convention `hookflash/<device id>`). In `per-device` mode hookflash
subscribes only to active devices' topics, so the broker never even sends it data of
other devices; in `wildcard` mode it subscribes to one filter and drops the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.config import MqttConfig
from collector.decode.mqtt import PayloadRejected, QuarantineEntry, decode_mqtt
from collector.pipeline import Pipeline
from collector.profiles import DeviceProfile, ProfileError, ProfileSet
from provisioning.events import EventType, LifecycleEvent
from provisioning.models import Device, Transport

log = logging.getLogger(__name__)
_SUBSCRIBE_CHUNK = 100


def _nothing() -> None:
    """The acknowledgement of a QoS 0 message (paho sends none)."""


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
        self._inbox: deque[tuple[str, bytes, int, int]] = deque()
        self._wake_pending = False
        self.connected = asyncio.Event()
        self._v5 = config.protocol == "5"
        self._manual_ack = config.qos == 1
        self._client = mqtt.Client(
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
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_message = self._on_message

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._refresh_devices()
        config = self._config
        if self._v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = config.session_expiry_s if config.persistent_session else 0
            properties.ReceiveMaximum = config.receive_maximum
            self._client.connect_async(
                config.host,
                config.port,
                config.keepalive_s,
                clean_start=not config.persistent_session,
                properties=properties,
            )
        else:
            self._client.connect_async(config.host, config.port, config.keepalive_s)
        self._client.loop_start()

    async def stop(self) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

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

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        log.warning("cannot connect to MQTT broker %s:%d; retrying", self._config.host, self._config.port)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.connected.clear)
        if reason.is_failure:
            log.warning("MQTT connection lost (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        # Waking the event loop costs more than decoding a message, so messages are
        # collected here and the loop is woken once per burst, not once per message.
        self._inbox.append((message.topic, bytes(message.payload), message.mid, message.qos))
        if not self._wake_pending:
            self._wake_pending = True
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._drain_inbox)

    # -- event loop side -----------------------------------------------------------------------

    def _resubscribe(self) -> None:
        # Subscriptions are per session: resubscribe after every (re)connect.
        self._subscribed.clear()
        self._subscribe(self._wanted_filters())
        self.connected.set()

    def _drain_inbox(self) -> None:
        self._wake_pending = False
        inbox = self._inbox
        while inbox:
            topic, payload, mid, qos = inbox.popleft()
            self._receive(topic, payload, self._acker(mid) if qos and self._manual_ack else _nothing)

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
        device_topic, _, kind = topic.rpartition("/")
        device = self._by_topic.get(device_topic)
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
            observation = decode_mqtt(profile, device.id, kind, payload, now, self._config.max_payload_bytes)
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
        self._pipeline.submit(observation, ack)

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
