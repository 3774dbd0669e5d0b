"""A simulated fleet for `hookflash demo` and the tests: Grandstream ATAs answering SNMP
and Yealink phones publishing JSON over MQTT, with values that drift over time. The agents
serve their profile's OIDs with the MIBs' types (sim/served.py), as a real device would.

Only loopback addresses are used. Values are random walks seeded per device, so a run is
varied but plausible: RSSI wanders, calls come and go, a few devices upgrade firmware,
the odd one reboots or loses its SIP registration.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.core.records import FieldValue
from collector.profiles import load_profiles
from collector.sim.served import Rows, agent_values
from collector.sim.snmp_agent import SimulatedAgent, TypedValue
from provisioning.models import Device, Transport

COMMUNITY = "demo-community"
ATA_MODELS = [("HT812", "1.0.43.11", "1.0.47.4"), ("HT802", "1.0.43.11", "1.0.47.4")]
PHONE_MODELS = [("T54W", "96.86.0.100", "96.86.0.118"), ("T46U", "108.86.0.90", "108.86.0.118")]
GS_HT8XX = "1.3.6.1.4.1.42397.1.2"  # GS-HT8XX-MIB::ht8xx; sysObjectIDs ht802 = .802, ht812 = .812
YEALINK_ENTERPRISE = "1.3.6.1.4.1.37459"
IF_ENTRY = "1.3.6.1.2.1.2.2.1"
YEALINK_MAC_PREFIX = "805ec0"
GRANDSTREAM_MAC_PREFIX = "000b82"


@dataclass
class DeviceState:
    device: Device
    firmware: str
    target_firmware: str
    rng: random.Random
    boot: float = field(default_factory=time.time)
    rssi: float = -55.0
    registered: bool = True
    mos: float = 4.2
    jitter: float = 8.0
    loss: float = 0.2
    calls: int = 0
    debug_until: float = 0.0  # set by hookflash's retained cmd/diagnostic message

    def step(self) -> None:
        r = self.rng
        self.rssi = min(-30.0, max(-90.0, self.rssi + r.gauss(0, 2.5)))
        self.registered = r.random() > 0.03 if self.registered else r.random() > 0.4
        self.jitter = min(120.0, max(1.0, self.jitter + r.gauss(0, 3)))
        self.loss = min(15.0, max(0.0, self.loss + r.gauss(0, 0.3)))
        self.mos = round(min(4.5, max(1.0, 4.4 - self.jitter / 60 - self.loss / 4 + r.gauss(0, 0.05))), 2)
        if r.random() < 0.3:
            self.calls += 1
        if self.firmware != self.target_firmware and r.random() < 0.08:
            self.firmware, self.boot = self.target_firmware, time.time()  # upgrade reboots
        elif r.random() < 0.005:
            self.boot = time.time()

    @property
    def uptime_s(self) -> int:
        return int(time.time() - self.boot) + 3600


def _mac(prefix: str, n: int) -> str:
    return f"{prefix}{n:06x}"


def build_fleet(size: int, seed: int = 7, accounts: int | None = None) -> list[DeviceState]:
    """Half ATAs (SNMP), half phones (MQTT; every third phone is polled over SNMP
    instead), spread over several accounts."""
    rng = random.Random(seed)
    n_accounts = accounts or max(3, size // 4)
    states = []
    for i in range(size):
        account = f"acct-{1001 + i % n_accounts}"
        if i % 2 == 0:
            model, old, new = ATA_MODELS[(i // 2) % len(ATA_MODELS)]
            dev = Device(
                id=_mac(GRANDSTREAM_MAC_PREFIX, i),
                account_id=account,
                vendor="Grandstream",
                model=model,
                transport=Transport.SNMP,
                address="127.0.0.1:1",
                credentials="demo",
            )
        else:
            model, old, new = PHONE_MODELS[(i // 2) % len(PHONE_MODELS)]
            mac = _mac(YEALINK_MAC_PREFIX, i)
            snmp = i % 6 == 5
            dev = Device(
                id=mac,
                account_id=account,
                vendor="Yealink",
                model=model,
                transport=Transport.SNMP if snmp else Transport.MQTT,
                address="127.0.0.1:1" if snmp else f"hookflash/{mac}",
                credentials="demo" if snmp else "",
                # the MQTT phones also send vq-rtcpxr reports of their calls (sim/sip_phones.py)
                sip_aor="" if snmp else f"sip:{mac}@phones.demo.invalid",
            )
        target = new if rng.random() < 0.5 else old
        states.append(DeviceState(dev, old, target, random.Random(seed * 1000 + i)))
    return states


_PROFILES = load_profiles()


def snmp_values(state: DeviceState) -> Mapping[str, TypedValue]:
    """What the device's agent answers: its profile's OIDs, typed as the MIBs say."""
    state.step()
    if state.device.vendor == "Yealink":
        fields = _standard_fields(state, f"Yealink SIP-{state.device.model}")
        return agent_values(_PROFILES.get("yealink-t5x"), fields, _if_rows(state))
    model = state.device.model
    ports = 4 if model == "HT814" else 1 if model == "HT801" else 2
    fields = _standard_fields(state, f"Grandstream {model}")
    fields |= {
        ("inventory", "part_number"): model,
        ("firmware", "boot_version"): "1.0.43.1",
        ("firmware", "base_version"): state.firmware,
        ("firmware", "prog_version"): state.firmware,
        ("config", "network_mode"): 0,  # the MIB leaves the numbers' meanings open
        ("config", "pppoe_link"): 0,
        ("config", "nat_traversal_1"): 0,
        ("config", "nat_traversal_2"): 0,
    }
    # regStatusN is a DisplayString without listed values: the simulation says "registered"
    for line in range(1, ports + 1):
        registered = state.registered if line == 1 else False
        fields[("registration", f"line{line}_state")] = "registered" if registered else "unregistered"
    return agent_values(_PROFILES.get("grandstream-ht8xx"), fields, _if_rows(state))


def _standard_fields(state: DeviceState, description: str) -> dict[tuple[str, str], FieldValue]:
    """The generic profile's fields (SNMPv2-MIB, ENTITY-MIB, IF-MIB) of one device."""
    model = state.device.model
    arc = model[2:] if state.device.vendor == "Grandstream" else model[1:3]
    enterprise = GS_HT8XX if state.device.vendor == "Grandstream" else YEALINK_ENTERPRISE
    return {
        ("inventory", "description"): f"{description} {state.firmware}",
        ("inventory", "sys_object_id"): f"{enterprise}.{arc}",
        ("inventory", "model_name"): model,
        ("inventory", "serial"): f"SN{state.device.id[-6:].upper()}",
        ("inventory", "hardware_rev"): "V2.1A",
        ("firmware", "version"): state.firmware,
        ("firmware", "boot_version"): "1.0.3.5",
        ("performance", "uptime_s"): state.uptime_s,
        ("network", "wan_mac"): _colons(state.device.id),
        ("network", "wan_oper_status"): "up",
    }


def _colons(mac: str) -> str:
    return ":".join(mac[i : i + 2] for i in range(0, 12, 2))


def _if_rows(state: DeviceState) -> Rows:
    row: dict[str, FieldValue] = {
        "if_descr": "eth0", "if_type": 6, "if_speed_bps": 100_000_000, "if_mac": _colons(state.device.id),
        "if_admin_status": "up", "if_oper_status": "up",
    }  # fmt: skip
    return {IF_ENTRY: {2: row}}


def phone_messages(state: DeviceState, full: bool) -> list[tuple[str, dict[str, object]]]:
    """(kind, payload) pairs one phone publishes in a cycle; inventory only when `full`."""
    state.step()
    now = round(time.time(), 3)
    messages: list[tuple[str, dict[str, object]]] = [
        ("signal", {"ts": now, "wifi": {"rssi": round(state.rssi), "channel": 36}}),
        (
            "registration",
            {"ts": now, "sip": {"state": "REG_OK" if state.registered else "REG_FAIL"}},
        ),
        (
            "call_quality",
            {
                "ts": now,
                "call": {
                    "mos": state.mos,
                    "jitter_ms": round(state.jitter),
                    "loss_pct": round(state.loss, 2),
                    "codec": "G722",
                },
            },
        ),
        ("performance", {"ts": now, "uptime_s": state.uptime_s}),
    ]
    if state.debug_until > time.time():
        messages.append(("diagnostic", {"ts": now, "log": f"SIP REGISTER rtt={state.rng.randint(20, 90)}ms"}))
    if full:
        messages += [
            ("firmware", {"ts": now, "firmware": {"version": state.firmware}}),
            ("inventory", {"ts": now, "model": state.device.model, "hw_version": "1.0.0.4"}),
        ]
    return messages


class SimulatedFleet:
    """Runs the agents and the phones' publisher until stopped."""

    def __init__(self, states: list[DeviceState], mqtt_port: int, period_s: float = 2.0) -> None:
        self.states = states
        self.agents: dict[str, SimulatedAgent] = {}
        self.malformed_sent = 0
        self.published = 0
        self._mqtt_port = mqtt_port
        self._period = period_s
        self._task: asyncio.Task[None] | None = None
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hookflash-sim-phones")

    @property
    def phones(self) -> list[DeviceState]:
        return [s for s in self.states if s.device.transport is Transport.MQTT]

    async def start(self) -> list[Device]:
        """Start agents and the publisher; return the devices with their real addresses."""
        devices = []
        for state in self.states:
            if state.device.transport is Transport.SNMP:
                agent = SimulatedAgent(COMMUNITY, lambda s=state: snmp_values(s))  # type: ignore[misc]
                await agent.start("127.0.0.1", 0)
                self.agents[state.device.id] = agent
                state.device = state.device.model_copy(update={"address": f"127.0.0.1:{agent.port}"})
            devices.append(state.device)
        self._client.on_message = self._on_control
        self._client.connect("127.0.0.1", self._mqtt_port)
        self._client.subscribe("hookflash/+/cmd/diagnostic", qos=1)
        self._client.loop_start()
        self._task = asyncio.create_task(self._publish_forever(), name="sim-phones")
        return devices

    def _on_control(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        device_topic = message.topic.removesuffix("/cmd/diagnostic")
        for state in self.phones:
            if state.device.address == device_topic:
                try:
                    until = json.loads(message.payload).get("until") or 0.0
                except (ValueError, AttributeError):
                    until = 0.0
                state.debug_until = float(until)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        for agent in self.agents.values():
            await agent.stop()

    async def _publish_forever(self) -> None:
        cycle = 0
        while True:
            for state in self.phones:
                for kind, payload in phone_messages(state, full=cycle % 5 == 0):
                    topic = f"{state.device.address}/{kind}"
                    self._client.publish(topic, json.dumps(payload), qos=1)
                    self.published += 1
            if cycle % 3 == 1 and self.phones:
                # A phone with a buggy firmware build: payloads a hostile-input path must survive.
                victim = self.phones[cycle % len(self.phones)]
                bad = [b'{"wifi": {"rssi": "strong"}}', b"\xff\xfe garbage", b'{"ts": NaN}']
                self._client.publish(f"{victim.device.address}/signal", bad[cycle % 3], qos=1)
                self.malformed_sent += 1
            cycle += 1
            await asyncio.sleep(self._period)
