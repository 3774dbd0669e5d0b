"""P8: diagnostic data is requested and stored only while a troubleshooting window is open.

At the SNMP agent this is observed with its own counters, read in one packet:
snmpInPkts and snmpInTotalReqVars give the exact number of variables per poll.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import MqttConfig, ServiceConfig, SnmpConfig, SnmpCredential
from collector.sinks.sqlite import TelemetryQueries
from factories import mqtt_device, snmp_device
from provisioning.registry import Registry
from runner import RunningService, eventually, hookflash
from services import Mosquitto, Snmpd, SnmpdFactory

# No published ATA MIB has a diagnostic object, so the lab's own profile adds one to the
# bundled HT8xx profile: what P8 governs is any field of kind `diagnostic`.
DIAG_OID = "1.3.6.1.4.1.99999.9.1.0"
LAB_PROFILE = f"""extends = ["grandstream-ht8xx"]
vendor = "Grandstream"
[[snmp]]
oid = "{DIAG_OID}"
kind = "diagnostic"
field = "last_sip_error"
type = "string"
"""


def vars_per_poll(agent: Snmpd, seconds: float = 1.5) -> float:
    return agent.vars_per_request(seconds)


def test_diagnostics_only_inside_the_window(
    tmp_path: Path, snmpd_factory: SnmpdFactory, mosquitto: Mosquitto
) -> None:
    agent = snmpd_factory({DIAG_OID: ("octet_str", "REGISTER timeout (408)")})
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "lab-ata.toml").write_text(LAB_PROFILE)
    cfg = ServiceConfig(
        data_dir=tmp_path / "data",
        profile_dirs=[tmp_path / "profiles"],
        # The interface table (network) is walked once; after that every poll is one GET.
        snmp=SnmpConfig(interval_s=0.25, timeout_s=0.5, retries=0, intervals={"network": 3600}),
        mqtt=MqttConfig(enabled=True, port=mosquitto.port, client_id="hf-debug"),
        credentials={"default": SnmpCredential.model_validate({"community": "public"})},
    )
    ata = snmp_device(1, "acct-a", agent.port).model_copy(update={"profile": "lab-ata"})
    phone = mqtt_device(2, "acct-a")
    Registry(cfg.data_dir / "registry.db").import_devices([ata, phone], source="test")
    controls: dict[str, dict[str, object]] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="phone-sim")
    client.on_message = lambda _c, _u, m: controls.__setitem__(m.topic, json.loads(m.payload))
    client.connect(mosquitto.host, mosquitto.port)
    client.subscribe("hookflash/+/cmd/diagnostic", qos=1)
    client.loop_start()
    store = TelemetryQueries.open(cfg.data_dir / "telemetry.db")

    def publish_log(text: str) -> None:
        client.publish(f"{phone.address}/diagnostic", json.dumps({"log": text}), qos=1).wait_for_publish(5)

    def diagnostics() -> list[str]:
        return [
            str(r.fields.get("last_sip_error") or r.fields.get("log_excerpt"))
            for r in store.query(kind="diagnostic")
        ]

    try:
        with RunningService(cfg):
            eventually(lambda: len(store.query(device_id=ata.id)) > 0, what="first poll")
            closed = vars_per_poll(agent)
            publish_log("outside window")
            time.sleep(0.5)
            assert diagnostics() == []

            for device in (ata.id, phone.id):
                result = hookflash("devices", "debug", device, "--for", "1h", "--data-dir", cfg.data_dir)
                assert result.returncode == 0 and "open until" in result.stdout
            eventually(lambda: "REGISTER timeout (408)" in diagnostics(), what="SNMP diagnostic stored")
            opened = vars_per_poll(agent)
            assert opened == closed + 1 and closed == int(closed)  # exactly the one diagnostic OID more
            eventually(
                lambda: controls.get(f"{phone.address}/cmd/diagnostic", {}).get("diagnostic") is True,
                what="phone told to send diagnostics",
            )
            publish_log("inside window")
            eventually(lambda: "inside window" in diagnostics(), what="MQTT diagnostic stored")

            for device in (ata.id, phone.id):
                assert (
                    hookflash("devices", "debug", device, "--close", "--data-dir", cfg.data_dir).returncode
                    == 0
                )
            time.sleep(0.5)
            count = len(diagnostics())
            assert vars_per_poll(agent) == closed
            publish_log("after window")
            time.sleep(0.8)
            assert len(diagnostics()) == count and "after window" not in diagnostics()
            assert controls[f"{phone.address}/cmd/diagnostic"] == {"diagnostic": False, "until": None}
    finally:
        client.disconnect()
        client.loop_stop()
    assert all(r.retention_class == "troubleshooting" for r in store.query(kind="diagnostic"))
