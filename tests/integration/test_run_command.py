"""`hookflash run -c CONFIG` as an operator runs it: a real agent, a real broker, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import ConfigError, load_config
from factories import mqtt_device, snmp_device
from provisioning.registry import Registry
from runner import eventually, hookflash
from services import Mosquitto, SnmpdFactory

REPO = Path(__file__).resolve().parents[2]
SECRET = "c0mmunity-that-must-not-leak"


def test_example_config_is_valid() -> None:
    config = load_config(REPO / "docker" / "hookflash.toml")
    assert config.mqtt.enabled and config.snmp.enabled
    assert config.credentials["default"].community_env == "HOOKFLASH_SNMP_COMMUNITY"
    assert (config.mqtt.username, config.mqtt.password_env) == ("hookflash", "HOOKFLASH_MQTT_PASSWORD")
    assert config.database_url == "postgresql://hookflash@postgres:5432/hookflash"
    assert config.database_password_env == "HOOKFLASH_DATABASE_PASSWORD"
    assert {t.name: t.scopes for t in config.api.tokens} == {
        "noc": ["read"],
        "billing": ["deactivate"],
        "privacy-office": ["admin"],
    }


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[snmp]\ninterval_s = -1\ncolour = 'blue'\n")
    try:
        load_config(path)
    except ConfigError as exc:
        assert "snmp.interval_s: Input should be greater than 0" in str(exc)
        assert "snmp.colour: Extra inputs are not permitted" in str(exc)
    else:
        raise AssertionError("config was accepted")
    result = hookflash("run", "-c", path)
    assert result.returncode == 2 and "snmp.colour" in result.stderr


def test_run_collects_from_agent_and_broker_and_stops_on_sigterm(
    tmp_path: Path, snmpd_factory: SnmpdFactory, mosquitto: Mosquitto
) -> None:
    agent = snmpd_factory({"1.3.6.1.2.1.1.2.0": ("object_id", "1.3.6.1.4.1.42397.1.2.812")}, community=SECRET)
    data = tmp_path / "data"
    Registry(data / "registry.db").import_devices(
        [snmp_device(1, "acct-a", agent.port), mqtt_device(2, "acct-a")], source="test"
    )
    config = tmp_path / "hookflash.toml"
    config.write_text(
        f'data_dir = "data"\n[snmp]\ninterval_s = 0.5\ntimeout_s = 0.5\n'
        f'[mqtt]\nenabled = true\nport = {mosquitto.port}\nclient_id = "hf-run"\n'
        f'[credentials.default]\ncommunity_env = "TEST_COMMUNITY"\n'
    )
    env = {**os.environ, "TEST_COMMUNITY": SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector.cli.main", "run", "-c", str(config), "--log-level", "debug"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        eventually(
            lambda: mosquitto.subscribed_topics("hf-run") == ["hookflash/805ec0000002/+"],
            what="service subscribed",
        )
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub")
        client.connect(mosquitto.host, mosquitto.port)
        client.loop_start()
        client.publish(
            "hookflash/805ec0000002/signal", json.dumps({"wifi": {"rssi": -61}}), qos=1
        ).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()

        def kinds() -> set[tuple[str, str]]:
            out = hookflash("query", "--format", "json", "--data-dir", data).stdout
            return {(r["source"], r["kind"]) for r in map(json.loads, out.splitlines())}

        eventually(
            lambda: {("snmp", "inventory"), ("mqtt", "signal")} <= kinds(),
            timeout=15,
            what="records from both sources",
        )
    finally:
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "stopping: flushing queued records" in stdout
    assert SECRET not in stdout + stderr  # P7: not even at debug level
