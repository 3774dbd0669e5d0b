"""Nothing one item does stops a source: against a running hookflash, a real mosquitto and
a real snmpd, a failure at each stage of each source is caught for that item alone, no
exception reaches the event loop, and the valid traffic around it is stored."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import MqttConfig, ServiceConfig, SnmpConfig, SnmpCredential
from collector.runtime.service import Service
from collector.sinks.sqlite import TelemetryQueries
from collector.sources.snmp import fast as snmp_fast
from factories import HT812_AGENT, mqtt_device, snmp_device
from provisioning.registry import Registry
from runner import RunningService, eventually
from services import Mosquitto, SnmpdFactory

CLIENT_ID = "hookflash-boundary"


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[mqtt.Client]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="boundary-publisher")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


class LoopErrors:
    """Whatever reaches the event loop's exception handler (an exception that escaped a
    callback, such as paho's socket reader)."""

    def __init__(self, running: RunningService) -> None:
        self.seen: list[dict[str, Any]] = []
        running.loop.call_soon_threadsafe(running.loop.set_exception_handler, self._handle)

    def _handle(self, _loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.seen.append(context)


def mqtt_config(tmp_path: Path, mosquitto: Mosquitto) -> ServiceConfig:
    cfg = ServiceConfig(
        data_dir=tmp_path / "data",
        snmp=SnmpConfig(enabled=False),
        mqtt=MqttConfig(enabled=True, port=mosquitto.port, client_id=CLIENT_ID),
    )
    Registry(cfg.data_dir / "registry.db").import_devices([mqtt_device(1, "acct-a")], source="test")
    return cfg


def send(client: mqtt.Client, body: bytes | dict[str, Any], kind: str = "call_quality") -> None:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    client.publish(f"hookflash/805ec0000001/{kind}", payload, qos=1).wait_for_publish(5)


def call(mos: float) -> dict[str, Any]:
    return {"ts": time.time(), "call": {"mos": mos}}


def stored_mos(cfg: ServiceConfig) -> list[float]:
    with TelemetryQueries.open(cfg.data_dir / "telemetry.db") as store:
        records = store.query(kind="call_quality")
    return sorted(float(r.fields["mos"]) for r in records)


def connected(running: RunningService) -> None:
    assert running.service is not None
    subscriber: Any = running.service.sources["mqtt"]
    eventually(subscriber.connected.is_set, what="MQTT connected")


def test_the_poison_message_is_quarantined_and_the_messages_around_it_stored(
    tmp_path: Path, mosquitto: Mosquitto, publisher: mqtt.Client
) -> None:
    cfg = mqtt_config(tmp_path, mosquitto)
    poison = b'{"ts": %d, "call": {"mos": %s}}' % (int(time.time()), b"9" * 5000)
    with RunningService(cfg) as running:
        errors = LoopErrors(running)
        connected(running)
        send(publisher, call(4.0))
        send(publisher, poison)
        for n in range(5):
            send(publisher, call(3.0 + n / 10))
        eventually(lambda: len(stored_mos(cfg)) == 6 and running.stats.quarantined == 1, what="all settled")
        assert errors.seen == []
    with TelemetryQueries.open(cfg.data_dir / "telemetry.db") as store:
        [entry] = store.quarantined()
    assert "digits" in entry.reason and entry.size == len(poison)
    with RunningService(cfg) as running:  # acknowledged once quarantined: not redelivered
        connected(running)
        send(publisher, call(2.5))
        eventually(lambda: len(stored_mos(cfg)) == 7, what="the next message")
        assert running.stats.quarantined == 0


def fail_once(target: Any, name: str, failures: list[str]) -> None:
    real = getattr(target, name)

    def failing(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(name)
            raise RuntimeError(f"injected failure in {name}")
        return real(*args, **kwargs)

    setattr(target, name, failing)


STAGES: dict[str, Callable[[Service], tuple[Any, str]]] = {
    "locate": lambda s: (s.intake._codecs["mqtt"], "locate"),
    "profile": lambda s: (s.intake._profiles, "require"),
    "decode": lambda s: (s.intake._codecs["mqtt"], "decode"),
    "tag": lambda s: (s.intake._tagger, "tag"),
    "queue": lambda s: (s.pipeline, "put"),
    "socket read": lambda s: (s.sources["mqtt"]._client, "loop_read"),  # type: ignore[attr-defined]
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_failure_at_each_mqtt_stage_is_that_messages_alone(
    tmp_path: Path, mosquitto: Mosquitto, publisher: mqtt.Client, stage: str
) -> None:
    cfg = mqtt_config(tmp_path, mosquitto)
    failures: list[str] = []
    with RunningService(cfg) as running:
        assert running.service is not None
        errors = LoopErrors(running)
        connected(running)
        fail_once(*STAGES[stage](running.service), failures)
        for n in range(5):
            send(publisher, call(4.0 + n / 10))
        # Every message but the one that met the failure is stored; after a failed socket
        # read the connection is made anew and the broker redelivers: all five are.
        expected = 5 if stage in ("socket read",) else 4
        eventually(
            lambda: len(stored_mos(cfg)) >= expected, timeout=20, what=f"messages after a {stage} failure"
        )
        time.sleep(0.3)
        assert failures == [STAGES[stage](running.service)[1]]
        assert errors.seen == [], errors.seen
        with TelemetryQueries.open(cfg.data_dir / "telemetry.db") as store:
            quarantined = store.quarantined()
        if stage in ("locate", "socket read"):  # no device known yet: nothing kept (P1)
            assert quarantined == []
        else:
            assert [q.reason for q in quarantined] == [
                f"could not be handled: RuntimeError: injected failure in {failures[0]}"
            ]
        assert len(stored_mos(cfg)) == expected
    with RunningService(cfg) as running:  # nothing left unacknowledged: no redelivery
        connected(running)
        time.sleep(1.0)
        assert len(stored_mos(cfg)) == expected


def snmp_config(tmp_path: Path, port: int) -> ServiceConfig:
    cfg = ServiceConfig(
        data_dir=tmp_path / "data",
        snmp=SnmpConfig(interval_s=0.3, timeout_s=0.5, retries=0),
        credentials={"default": SnmpCredential.model_validate({"community": "public"})},
    )
    Registry(cfg.data_dir / "registry.db").import_devices(
        [snmp_device(1, "acct-a", port), snmp_device(2, "acct-b", port)], source="test"
    )
    return cfg


def polls_stored(cfg: ServiceConfig, device_id: str) -> int:
    with TelemetryQueries.open(cfg.data_dir / "telemetry.db") as store:
        return len(store.query(device_id=device_id, kind="performance"))


SNMP_STAGES: dict[str, Callable[[Service], tuple[Any, str]]] = {
    "decode": lambda s: (s.intake._codecs["snmp"], "decode"),
    "tag": lambda s: (s.intake._tagger, "tag"),
    "scheduler": lambda s: (s.sources["snmp"], "_start_poll"),
    "answer": lambda _s: (snmp_fast, "decode_response"),  # inside the datagram callback
}


@pytest.mark.parametrize("stage", list(SNMP_STAGES))
def test_a_failure_at_each_snmp_stage_is_that_polls_alone(
    tmp_path: Path, snmpd_factory: SnmpdFactory, stage: str
) -> None:
    agent = snmpd_factory(HT812_AGENT)
    cfg = snmp_config(tmp_path, agent.port)
    failures: list[str] = []
    with RunningService(cfg) as running:
        assert running.service is not None
        errors = LoopErrors(running)
        eventually(lambda: polls_stored(cfg, snmp_device(1, "x").id) >= 1, what="a first poll")
        target, name = SNMP_STAGES[stage](running.service)
        real = getattr(target, name)
        fail_once(target, name, failures)
        eventually(lambda: bool(failures), what="the failure met")
        before = {d: polls_stored(cfg, snmp_device(d, "x").id) for d in (1, 2)}
        eventually(
            lambda: all(polls_stored(cfg, snmp_device(d, "x").id) >= before[d] + 3 for d in (1, 2)),
            what="both devices polled on",
        )
        assert errors.seen == [], errors.seen
        assert running.stats.intake_faults + running.stats.source_faults <= 1
        setattr(target, name, real)


def test_hostile_datagrams_at_the_pollers_socket_change_nothing(
    tmp_path: Path, snmpd_factory: SnmpdFactory
) -> None:
    agent = snmpd_factory(HT812_AGENT)
    cfg = snmp_config(tmp_path, agent.port)
    with RunningService(cfg) as running:
        assert running.service is not None
        errors = LoopErrors(running)
        client: Any = running.service.sources["snmp"]._fast.client  # type: ignore[attr-defined]
        port = client._transport.get_extra_info("sockname")[1]
        eventually(lambda: polls_stored(cfg, snmp_device(1, "x").id) >= 1, what="a first poll")
        hostile = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for n in range(2000):
            body = [b"", b"\x30", b"\x30\x82\xff\xff", bytes(range(256)) * 3, b"\x30\x03\x02\x01\x01" * 10]
            hostile.sendto(body[n % len(body)], ("127.0.0.1", port))
        before = polls_stored(cfg, snmp_device(1, "x").id)
        eventually(lambda: polls_stored(cfg, snmp_device(1, "x").id) >= before + 3, what="polled on")
        assert client.counters.malformed >= 1000 and errors.seen == []
