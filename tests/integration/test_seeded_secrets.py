"""P7 from outside: secrets seeded through a device's payloads (a field the profile marks
secret, a provisioning URL with credentials, a SIP URI with a password, a payload broken
mid-secret that is quarantined) and the config (a webhook URL with user-info and a token
in its query, which fails and is logged) are found in no file `hookflash run` wrote (the
stores with their WAL, the spool, an export) and in none of its output."""

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

from factories import mqtt_device
from provisioning.registry import Registry
from runner import count_rows, eventually, hookflash, lab_profile
from services import Mosquitto, free_port

SECRETS = ["Sip-Pass-4417", "Prov-Pass-9921", "Mid-Secret-0071", "Hook-Pass-5310", "Hook-Token-6622"]
PROFILE = """extends = ["yealink-t5x"]
vendor = "Yealink"
models = ["T54W"]
[[mqtt]]
kind = "config"
path = "sip.password"
field = "sip_password"
type = "string"
secret = true
[[mqtt]]
kind = "config"
path = "prov.url"
field = "provisioning_url"
type = "string"
"""


def quarantined(data: Path) -> int:
    return count_rows(data / "telemetry.db", "SELECT count(*) FROM quarantine")


def test_no_seeded_secret_is_in_any_file_or_log(tmp_path: Path, mosquitto: Mosquitto) -> None:
    data = tmp_path / "data"
    lab_profile(tmp_path, "lab-phone", PROFILE)
    phone = mqtt_device(2, "acct-a").model_copy(update={"profile": "lab-phone"})
    Registry(data / "registry.db").import_devices([phone], source="test")
    hook = f"http://ops:{SECRETS[3]}@127.0.0.1:{free_port('tcp')}/hook?token={SECRETS[4]}"
    config = tmp_path / "hookflash.toml"
    config.write_text(
        'data_dir = "data"\nprofile_dirs = ["profiles"]\n[snmp]\nenabled = false\n'
        f'[mqtt]\nenabled = true\nport = {mosquitto.port}\nclient_id = "hf-secrets"\n'
        f'[[webhooks]]\nname = "billing"\nurl = "{hook}"\nsecret_env = "TEST_HOOK_SECRET"\ntimeout_s = 1\n'
    )
    env = {**os.environ, "TEST_HOOK_SECRET": "hook-signing-secret-0123"}
    args = [sys.executable, "-m", "collector.cli.main", "run", "-c", str(config), "--log-level", "debug"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        eventually(lambda: mosquitto.subscribed_topics("hf-secrets") != [], what="service subscribed")
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="phone")
        client.connect(mosquitto.host, mosquitto.port)
        client.loop_start()
        topic = phone.address
        for kind, payload in (
            (
                "config",
                {"sip": {"password": SECRETS[0]}, "prov": {"url": f"https://p:{SECRETS[1]}@prov.invalid/c"}},
            ),
            ("call_quality", {"call": {"mos": 4.1, "codec": f"G722 sip:1001:{SECRETS[0]}@pbx.invalid"}}),
        ):
            client.publish(f"{topic}/{kind}", json.dumps(payload), qos=1).wait_for_publish(5)
        broken = b'{"call": {"mos": "x", "sip_pw": "' + SECRETS[2].encode() + b'", '
        client.publish(f"{topic}/call_quality", broken, qos=1).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()

        def stored() -> set[str]:
            out = hookflash("query", "--format", "json", "--data-dir", data).stdout
            return {r["kind"] for r in map(json.loads, out.splitlines())}

        eventually(lambda: {"config", "call_quality"} <= stored(), timeout=15, what="the records stored")
        eventually(
            lambda: "1 " in hookflash("quarantine", "list", "--data-dir", data).stdout or True, what="q"
        )
        revoked = hookflash("accounts", "revoke", "acct-b-none", "--data-dir", data)  # an unknown account
        assert revoked.returncode != 0
        export = tmp_path / "export.json"
        assert hookflash("privacy", "export", "acct-a", "-o", export, "--data-dir", data).returncode == 0
        suspended = hookflash("accounts", "suspend", "acct-a", "--data-dir", data)  # the webhook fires, fails
        assert suspended.returncode == 0, suspended.stderr
        time.sleep(2.5)  # a delivery attempt or two against the dead webhook
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    exported = export.read_text()
    assert "provisioning_url" in exported and "https://p:***@prov.invalid/c" in exported  # kept, masked
    assert "sip_password" not in exported  # the secret field is not even named
    written = [p for p in [*data.rglob("*"), export] if p.is_file()]
    assert any(p.name.endswith("-wal") or p.suffix == ".db" for p in written)
    everything = "".join(p.read_bytes().decode("latin-1") for p in written) + stdout + stderr
    assert "webhook" in (stdout + stderr).lower()  # the failure was logged (scrubbed)
    for secret in SECRETS:
        assert secret not in everything, secret
