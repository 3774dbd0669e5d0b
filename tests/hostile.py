"""Hostile input against a running hookflash process, over the network: for MQTT, a real
mosquitto and a publisher mixing hostile messages (bad bytes, bad JSON, huge numbers, deep
nesting, oversize payloads, implausible values, odd topics, unknown devices) with valid
ones; for SNMP, a hostile agent that answers every poll, but first sends hookflash's socket
datagrams it must not take (garbage, truncated answers, wrong request ids, wrong
community, another source port, oversize packets) and duplicates after.

Every valid item carries a unique number (`uptime_s`), so the store tells exactly which
arrived, how often, and how late. Used by bench/hostile_input.py (100,000 hostile items a
source) and, with fewer, by tests/integration/test_hostile_input.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api

from collector.sim.snmp_agent import SimulatedAgent, TypedValue
from factories import HT812_AGENT, mqtt_device, snmp_device
from provisioning.registry import Registry
from runner import eventually
from services import Mosquitto

STALL_S = 2.0
_SYS_UP_TIME = bytes.fromhex("06082b06010201010300")  # OID 1.3.6.1.2.1.1.3.0, BER


@dataclass
class Outcome:
    source: str
    hostile: int = 0
    valid_sent: int = 0
    valid_stored: int = 0
    duplicates: int = 0
    stalls: int = 0
    crashed: int = 0
    hostile_stored: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.valid_sent - self.valid_stored

    def result(self) -> str:
        return (
            f"RESULT source={self.source} hostile={self.hostile} valid_sent={self.valid_sent} "
            f"valid_stored={self.valid_stored} lost={self.lost} crashed={self.crashed} stalls={self.stalls} "
            f"duplicates={self.duplicates} hostile_stored={self.hostile_stored}"
        )


class Hookflash:
    """`hookflash run` in a process of its own, its output in a file (never a pipe that
    nobody reads, which would block its logging)."""

    def __init__(self, work: Path, config: str) -> None:
        self.work = work
        (work / "hookflash.toml").write_text(config)
        self.log = work / "hookflash.log"
        self._out = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "collector.cli.main", "run", "-c", str(work / "hookflash.toml")],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        """1 if the process had died, or logged an exception that escaped a callback."""
        crashed = 0 if self.alive() else 1
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            crashed = 1
        self._out.close()
        text = self.log.read_text(errors="replace")
        if "Exception in callback" in text or "Traceback" in text:
            crashed = 1
        return crashed


def stored_uptimes(data: Path) -> list[tuple[int, float]]:
    """(uptime_s, received_at) of every performance record stored."""
    db = sqlite3.connect(data / "telemetry.db")
    try:
        rows = db.execute(
            "SELECT json_extract(fields, '$.uptime_s'), received_at FROM telemetry WHERE kind = 'performance'"
        ).fetchall()
        return [(int(n), float(at)) for n, at in rows]
    finally:
        db.close()


def settle(outcome: Outcome, data: Path, sent_at: dict[int, float], other_kinds_allowed: bool) -> None:
    stored = stored_uptimes(data)
    seen = [n for n, _ in stored if n in sent_at]
    outcome.valid_stored = len(set(seen))
    outcome.duplicates = len(seen) - len(set(seen))
    outcome.stalls = sum(1 for n, at in stored if n in sent_at and at - sent_at[n] > STALL_S)
    db = sqlite3.connect(data / "telemetry.db")
    try:
        outcome.quarantined = int(db.execute("SELECT count(*) FROM quarantine").fetchone()[0])
        outcome.by_kind = dict(db.execute("SELECT kind, count(*) FROM telemetry GROUP BY kind").fetchall())
    finally:
        db.close()
    unknown = len(stored) - len(seen)
    others = (
        0
        if other_kinds_allowed
        else sum(v for k, v in outcome.by_kind.items() if k not in ("performance", "change"))
    )
    outcome.hostile_stored = unknown + others + _changes_not_of(data, sent_at)


def _changes_not_of(data: Path, sent_at: dict[int, float]) -> int:
    """Change records derived from anything but valid items. (Valid items arriving out of
    order, as a redelivery after a full pipeline does, rightly make a "reboot" record.)"""
    db = sqlite3.connect(data / "telemetry.db")
    try:
        rows = db.execute("SELECT fields FROM telemetry WHERE kind = 'change'").fetchall()
    finally:
        db.close()
    changes = [json.loads(r[0]) for r in rows]
    return sum(
        1
        for c in changes
        if c.get("event") != "reboot"
        or c.get("uptime_s") not in sent_at
        or c.get("previous_uptime_s") not in sent_at
    )


# -- MQTT ----------------------------------------------------------------------------------------


def _mqtt_hostile(rng: random.Random, root: str, now: float) -> tuple[str, bytes]:
    """One message no device can mean, on a topic of a provisioned device or not."""
    choice = rng.randrange(22)
    good = json.dumps({"ts": now, "uptime_s": 1, "call": {"mos": 4.0}}).encode()
    if choice == 0:
        return f"{root}/performance", rng.randbytes(rng.randrange(0, 300))
    if choice == 1:
        return f"{root}/call_quality", b'{"call": {"mos": "\xff\xfe"}}'
    if choice == 2:
        return f"{root}/call_quality", rng.choice(
            [b'{"call": {"mos": NaN}}', b'{"call": {"mos": -Infinity}}']
        )
    if choice == 3:
        return f"{root}/call_quality", b'{"call": {"mos": %s}}' % (
            b"9" * rng.choice([400, 4400, 5000, 20000])
        )
    if choice == 4:
        depth = rng.choice([17, 100, 1000, 5000])
        return f"{root}/signal", b'{"wifi": ' + b"[" * depth + b"1" + b"]" * depth + b"}"
    if choice == 5:
        return f"{root}/signal", b'{"wifi": {"rssi": "' + b"x" * rng.choice([60_000, 70_000]) + b'"}}'
    if choice == 6:
        return f"{root}/call_quality", json.dumps(
            {"call": {"mos": rng.choice([1e308, -5, 1.18e21, 5.5, 0])}}
        ).encode()
    if choice == 7:
        return f"{root}/signal", json.dumps(
            {"wifi": {"rssi": rng.choice([50, -500, "4,1", "0x10", True, [], {}])}}
        ).encode()
    if choice == 8:
        ts = rng.choice([now + 3600, now - 30 * 86400, "abc", 1e300, -1, True])
        return f"{root}/performance", json.dumps({"ts": ts, "uptime_s": 5}).encode()
    if choice == 9:
        return f"{root}/performance", json.dumps({"device_id": "00:11:22:33:44:55", "uptime_s": 5}).encode()
    if choice == 10:
        mac = "".join(rng.choice("0123456789abcdef") for _ in range(12))
        return f"hookflash/{mac}/performance", good  # not provisioned: not kept at all
    if choice == 11:
        return f"{root}/{rng.choice(['bogus', 'DIAGNOSTIC', '', 'inventory '])}", good
    if choice == 12:
        return f"{root}/extra/levels/performance", good  # another root: no such device
    if choice == 13:
        return rng.choice(["hookflash//performance", "/", "hookflash", "x" * 1000, "hookflash/é/∞"]), good
    if choice == 14:
        return f"{root}/performance", rng.choice([b"[]", b'"text"', b"42", b"null", b"", b"{}"])
    if choice == 15:
        return f"{root}/performance", good[: rng.randrange(1, len(good) - 1)]  # truncated
    if choice == 16:
        return f"{root}/performance", json.dumps({"uptime_s": -7}).encode()
    if choice == 17:
        return f"{root}/performance", json.dumps({"uptime_s": 2**70}).encode()
    if choice == 18:
        return f"{root}/call_quality", b'{"call": {"mos": 1}, "call": {"mos": 9}}'
    if choice == 19:
        return f"{root}/performance", b'{"uptime_s": 1' + b"0" * 20 + b"e9999}"
    if choice == 20:
        return f"{root}/call_quality", b'{"call": {"codec": "' + bytes(
            rng.randrange(1, 32) for _ in range(50)
        ) + b'"}}'
    return f"{root}/performance", b"\x00" * rng.randrange(1, 100)


MQTT_RATE = 4000.0  # messages a second: well below what hookflash ingests, so that a late
# valid message means something stalled it, not that the publisher outran the store


def run_mqtt(
    work: Path, hostile: int, valid_every: int = 10, seed: int = 1, rate: float = MQTT_RATE
) -> Outcome:
    """`hostile` hostile messages with a valid one after every `valid_every` of them, at
    `rate` messages a second."""
    outcome = Outcome("mqtt")
    rng = random.Random(seed)
    data = work / "data"
    phones = [mqtt_device(n, f"acct-{n % 5}") for n in range(20)]
    Registry(data / "registry.db").import_devices(phones, source="hostile")
    with Mosquitto(work / "mosquitto") as broker:
        hookflash = Hookflash(
            work,
            f'data_dir = "data"\n[snmp]\nenabled = false\n[mqtt]\nenabled = true\nport = {broker.port}\n'
            'client_id = "hf-hostile"\nsubscribe = "wildcard"\nwildcard_filter = "hookflash/#"\n'
            "receive_maximum = 500\n",
        )
        eventually(lambda: broker.subscribed_topics("hf-hostile") != [], timeout=30, what="subscribed")
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hostile-publisher")
        client.max_inflight_messages_set(0)  # unlimited: paho sends in order (a full window can reorder)
        client.max_queued_messages_set(0)
        client.connect(broker.host, broker.port)
        client.loop_start()
        sent_at: dict[int, float] = {}
        infos = []
        published = 0
        started = time.monotonic()
        base = time.time()  # after the accounts became active: earlier data is refused
        for n in range(hostile):
            root = phones[rng.randrange(len(phones))].address
            topic, payload = _mqtt_hostile(rng, root, time.time())
            infos.append(client.publish(topic, payload, qos=1))
            published += 1
            outcome.hostile += 1
            if n % valid_every == valid_every - 1:
                number = len(sent_at)
                body = json.dumps({"ts": base + number * 0.001, "uptime_s": number}).encode()
                sent_at[number] = time.time()
                infos.append(
                    client.publish(f"{phones[number % len(phones)].address}/performance", body, qos=1)
                )
                published += 1
            if n % 100 == 99:  # keep to `rate`
                ahead = started + published / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            if len(infos) >= 2000:
                for info in infos:
                    info.wait_for_publish(60)
                infos.clear()
        for info in infos:
            info.wait_for_publish(60)
        outcome.valid_sent = len(sent_at)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len({n for n, _ in stored_uptimes(data)}) < len(sent_at):
            if not hookflash.alive():
                break
            time.sleep(0.2)
        outcome.seconds = time.monotonic() - started
        time.sleep(0.5)
        client.disconnect()
        client.loop_stop()
        outcome.crashed = hookflash.stop()
    settle(outcome, data, sent_at, other_kinds_allowed=False)
    return outcome


# -- SNMP ----------------------------------------------------------------------------------------


class HostileAgent:
    """Answers hookflash's polls like an HT812 (a sysUpTime of its own for every answer),
    but first sends the poller's socket what it must not take, and repeats the answer
    after. Runs its own event loop in a thread."""

    def __init__(self, rng: random.Random, per_request: int) -> None:
        self._rng = rng
        self._per_request = per_request
        self.answers = 0
        self.hostile = 0
        self.sent_at: dict[int, float] = {}
        self._agent = SimulatedAgent("public", self._values)
        self._uptime = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0
        self.answering = True

    def _values(self) -> dict[str, TypedValue]:
        kinds = {
            "octet_str": "octets",
            "object_id": "oid",
            "integer": "integer",
            "gauge": "gauge",
            "counter": "counter32",
        }
        values = {oid: TypedValue(kinds[k], v) for oid, (k, v) in HT812_AGENT.items()}  # type: ignore[arg-type]
        values["1.3.6.1.2.1.1.3.0"] = TypedValue("timeticks", self._uptime * 100)
        return values

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._main, _ = await loop.create_datagram_endpoint(
            lambda: _Answer(self), local_addr=("127.0.0.1", 0)
        )
        self._other, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        self.port = self._main.get_extra_info("sockname")[1]

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._main.close)
        self._loop.call_soon_threadsafe(self._other.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def handle(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.answering:
            return
        self._uptime += 1
        reply = self._agent._handle(data)
        if reply is None:
            return
        for _ in range(self._per_request):
            self._main.sendto(self._hostile(reply, data), addr)
            self.hostile += 1
        if self._rng.random() < 0.02:  # sometimes the answer itself from another port: not taken
            self._other.sendto(reply, addr)
            self.hostile += 1
            return
        self._main.sendto(reply, addr)
        if _SYS_UP_TIME in reply:  # a GET with sysUpTime: one performance record (not a table walk)
            self.answers += 1
            self.sent_at[self._uptime] = time.time()
        if self._rng.random() < 0.3:  # a duplicate after the answer: matched to nothing
            self._main.sendto(reply, addr)
            self.hostile += 1

    def _hostile(self, reply: bytes, request: bytes) -> bytes:
        rng = self._rng
        choice = rng.randrange(8)
        if choice == 0:
            return rng.randbytes(rng.randrange(0, 200))
        if choice == 1:
            return reply[: rng.randrange(0, len(reply))]
        if choice == 2:
            return _rewritten(reply, request_id_delta=rng.randrange(1, 1000))
        if choice == 3:
            return _rewritten(reply, community=b"not-the-community")
        if choice == 4:
            return b"\x30\x83\x00\xea\x60" + rng.randbytes(60_000)  # a 60 kB SEQUENCE of junk
        if choice == 5:
            return request  # the request bounced back: not a response
        if choice == 6:  # the message's length claims more than there is (a flipped bit in a
            # value would still be the device's answer as far as SNMPv2c can tell: no integrity)
            return (
                reply[:1] + bytes([reply[1] + rng.randrange(1, 5)]) + reply[2:]
                if reply[1] < 0x7B
                else reply[:-1]
            )
        return reply + rng.randbytes(rng.randrange(1, 20))  # trailing bytes


def _rewritten(reply: bytes, request_id_delta: int = 0, community: bytes | None = None) -> bytes:
    p_mod = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    msg, _ = decoder.decode(reply, asn1Spec=p_mod.Message())
    pdu = p_mod.apiMessage.get_pdu(msg)
    if request_id_delta:
        p_mod.apiPDU.set_request_id(pdu, int(p_mod.apiPDU.get_request_id(pdu)) + request_id_delta)
    if community is not None:
        p_mod.apiMessage.set_community(msg, community)
    return bytes(encoder.encode(msg))


class _Answer(asyncio.DatagramProtocol):
    def __init__(self, agent: HostileAgent) -> None:
        self._agent = agent

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._agent.handle(data, addr)


def run_snmp(work: Path, hostile: int, per_request: int = 8, seed: int = 1, devices: int = 10) -> Outcome:
    """Polls of `devices` HT812s until the agent has sent `hostile` hostile datagrams."""
    outcome = Outcome("snmp")
    agent = HostileAgent(random.Random(seed), per_request)
    agent.start()
    data = work / "data"
    ata = [snmp_device(n, f"acct-{n % 5}", agent.port) for n in range(devices)]
    Registry(data / "registry.db").import_devices(ata, source="hostile")
    hookflash = Hookflash(
        work,
        'data_dir = "data"\n[snmp]\ninterval_s = 0.05\ntimeout_s = 1.0\nretries = 0\n'
        '[credentials.default]\ncommunity = "public"\n',
    )
    started = time.monotonic()
    deadline = started + 600
    while agent.hostile < hostile and time.monotonic() < deadline and hookflash.alive():
        time.sleep(0.1)
    agent.answering = False
    time.sleep(1.5)  # the last answers reach the store
    outcome.seconds = time.monotonic() - started
    outcome.crashed = hookflash.stop()
    agent.stop()
    outcome.hostile = agent.hostile
    outcome.valid_sent = agent.answers
    settle(outcome, data, agent.sent_at, other_kinds_allowed=True)
    return outcome


RUNS: dict[str, Callable[..., Outcome]] = {"mqtt": run_mqtt, "snmp": run_snmp}


def main_for(argv: list[str], default_hostile: int) -> list[Outcome]:
    """For bench/hostile_input.py."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="hostile input against a running hookflash")
    parser.add_argument("--source", choices=[*RUNS, "all"], default="all")
    parser.add_argument("--hostile", type=int, default=default_hostile)
    args = parser.parse_args(argv)
    outcomes = []
    for name in RUNS if args.source == "all" else [args.source]:
        with tempfile.TemporaryDirectory() as tmp:
            outcome = RUNS[name](Path(tmp), args.hostile)
        print(
            f"{name}: {outcome.hostile:,} hostile and {outcome.valid_sent:,} valid items "
            f"in {outcome.seconds:.1f}s; "
            f"{outcome.quarantined:,} quarantined; records by kind {outcome.by_kind}",
            flush=True,
        )
        outcomes.append(outcome)
    for outcome in outcomes:
        print(outcome.result(), flush=True)
    return outcomes
