"""P7 from outside, through the sources test_seeded_secrets does not use: secrets seeded into
a running `hookflash run` (at debug level) through SNMP polling (a field the profile marks
secret, a provisioning URL with credentials), SNMP traps and a v3 inform (a secret field, a
SIP URI with a password, a value broken mid-secret, the v3 passphrases themselves), SIP
vq-rtcpxr reports (SIP URIs with passwords in the body and in From, a report broken on a
line with a password) and the SNMP credentials (the community that polls the agent and
that the traps come with) are found in no file hookflash wrote under its data dir (the
stores with their WAL, snmp-engine.json), in no export, and in none of its output; while
every source's records are stored, with the URLs masked."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from factories import HT812_AGENT, snmp_device
from provisioning.registry import Registry
from runner import eventually, hookflash, lab_profile
from services import SnmpdFactory, free_port
from sip import publish, report, sip_device, status, udp_exchange

LAB = "1.3.6.1.4.1.99999.7"  # a lab agent's own objects, served by snmpd `override`
ADMIN_PASSWORD, PROVISIONING_URL, LINE1_URI = f"{LAB}.1.0", f"{LAB}.2.0", f"{LAB}.3.0"
FIRMWARE = "1.3.6.1.4.1.42397.1.2.3.2.0"  # GS-HT8XX-MIB::versionCore
PPPOE_LINK = "1.3.6.1.4.1.42397.1.2.4.2.0"  # GS-HT8XX-MIB::pppoeLink, an Integer32
TRAP_OID = "1.3.6.1.4.1.42397.1.2.5.1"  # GS-HT8XX-MIB::TimedTrap
PROFILE = f"""extends = ["grandstream-ht8xx"]
vendor = "Grandstream"
models = ["HT812"]
[[snmp]]
oid = "{ADMIN_PASSWORD}"
syntax = "DisplayString"
kind = "config"
field = "admin_password"
type = "string"
secret = true
[[snmp]]
oid = "{PROVISIONING_URL}"
syntax = "DisplayString"
kind = "config"
field = "provisioning_url"
type = "string"
[[snmp]]
oid = "{LINE1_URI}"
syntax = "DisplayString"
kind = "registration"
field = "line1_uri"
type = "string"
"""

SECRETS = {
    # SNMP polling: served by the agent
    "poll secret field": "Poll-Admin-Pass-3141",
    "poll URL user-info": "Poll-Url-Pass-2718",
    # SNMP traps and informs
    "trap secret field": "Trap-Admin-Pass-1618",
    "trap SIP URI": "Trap-Sip-Pass-1414",
    "trap broken value": "Trap-Bad-77",
    "v3 inform secret field": "Inform-Admin-Pass-4669",
    "v3 auth passphrase": "V3-Auth-Pass-5772",
    "v3 priv passphrase": "V3-Priv-Pass-6931",
    # SIP vq-rtcpxr
    "SIP LocalID": "Sip-Local-Pass-8080",
    "SIP RemoteID": "Sip-Remote-Pass-9090",
    "SIP From": "Sip-From-Pass-3030",
    "SIP broken report": "Sip-Broken-Pass-4242",
    # the SNMP credentials: the agent's community, the one v2c traps come with
    "SNMP community": "Community-Secret-7331",
}
S = SECRETS
POLL_URL = f"https://u:{S['poll URL user-info']}@prov.invalid/x"
TRAP_URI = f"sip:1001:{S['trap SIP URI']}@pbx.invalid"
TRAP_BROKEN = f"sip:9:{S['trap broken value']}@pbx.invalid"  # 29 characters: a reason quotes 32
SIP_DEVICE_MAC = "00:04:f2:00:00:03"
ALICE = "sip:alice@example.org"


def net_snmp_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "SNMPCONFPATH": "/nonexistent",
        "SNMP_PERSISTENT_DIR": str(tmp_path / "net-snmp"),
        "MIBS": "",
    }


def notify(tmp_path: Path, command: str, port: int, security: list[str], *varbinds: str) -> None:
    """`snmptrap`/`snmpinform` to hookflash's listener, with sysUpTime 3600 s."""
    args = [command, *security, "-r", "1", "-t", "3", f"127.0.0.1:{port}", "360000", TRAP_OID, *varbinds]
    done = subprocess.run(args, capture_output=True, text=True, timeout=20, env=net_snmp_env(tmp_path))
    assert done.returncode == 0, done.stderr


def localized_key(passphrase: str, engine_id: bytes, length: int) -> bytes:
    """RFC 3414 A.2 / RFC 7860 with SHA-256: the key a passphrase becomes for an engine."""
    text = passphrase.encode()
    ku = hashlib.sha256((text * (1048576 // len(text) + 1))[:1048576]).digest()
    return hashlib.sha256(ku + engine_id + ku).digest()[:length]


def contents(root: Path, label: str = "") -> dict[str, bytes]:
    """Every file under `root` (a file gone while listing, a temporary one, is skipped)."""
    found: dict[str, bytes] = {}
    for path in root.rglob("*"):
        try:
            if path.is_file():
                found[f"{path.relative_to(root.parent)}{label}"] = path.read_bytes()
        except FileNotFoundError:
            continue
    return found


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_no_secret_seeded_through_snmp_traps_or_sip_is_in_any_file_or_log(
    tmp_path: Path, snmpd_factory: SnmpdFactory
) -> None:
    served = {
        **HT812_AGENT,
        ADMIN_PASSWORD: ("octet_str", S["poll secret field"]),
        PROVISIONING_URL: ("octet_str", POLL_URL),
    }
    agent = snmpd_factory(served, community=S["SNMP community"])
    data = tmp_path / "data"
    lab_profile(tmp_path, "lab-ata", PROFILE)
    ata = snmp_device(1, "acct-a", agent.port).model_copy(update={"profile": "lab-ata"})
    phone = sip_device(3, "acct-a", ALICE)
    registry = Registry(data / "registry.db")
    registry.import_devices([ata, phone], source="test")
    registry.close()
    sip_port, trap_port = free_port("udp"), free_port("udp")
    # The test's own credentials file (hookflash's config): the v2c community written in it,
    # the v3 passphrases named by environment variables. Outside the data dir, not grepped.
    config = tmp_path / "hookflash.toml"
    config.write_text(
        'data_dir = "data"\nprofile_dirs = ["profiles"]\n'
        "[snmp]\ninterval_s = 0.5\ntimeout_s = 0.5\nretries = 0\n"
        f'[sip]\nenabled = true\nlisten = "127.0.0.1:{sip_port}"\ntcp = false\n'
        f'[snmp_traps]\nenabled = true\nlisten = "127.0.0.1:{trap_port}"\n'
        f'[credentials.default]\ncommunity = "{S["SNMP community"]}"\n'
        '[credentials.labops]\nversion = "v3"\nuser = "labops"\nauth_protocol = "SHA-256"\n'
        'auth_key_env = "LAB_V3_AUTH"\npriv_protocol = "AES-128"\npriv_key_env = "LAB_V3_PRIV"\n'
    )
    env = {**os.environ, "LAB_V3_AUTH": S["v3 auth passphrase"], "LAB_V3_PRIV": S["v3 priv passphrase"]}
    out, err = tmp_path / "run.stdout", tmp_path / "run.stderr"  # files: a pipe could fill up
    args = [sys.executable, "-m", "collector.cli.main", "run", "-c", str(config), "--log-level", "debug"]
    with out.open("w") as stdout_file, err.open("w") as stderr_file:
        proc = subprocess.Popen(args, stdout=stdout_file, stderr=stderr_file, text=True, env=env)
    cli_output: list[str] = []  # what the CLI printed: hookflash output too
    try:
        eventually(
            lambda: (
                "SNMP trap and inform listener on UDP" in err.read_text()
                and "SIP listener for vq-rtcpxr" in err.read_text()
            ),
            timeout=15,
            what="the trap and SIP listeners started",
        )

        # SIP: a good report with passwords in LocalID (not kept) and RemoteID (kept, masked)
        good = report("call-secret", local=f"<sip:1001:{S['SIP LocalID']}@pbx.invalid>").replace(
            b"RemoteID: sip:bob@example.org", f"RemoteID: <sip:2002:{S['SIP RemoteID']}@pbx.invalid>".encode()
        )
        assert status(udp_exchange(sip_port, publish(sip_port, good))) == 200
        # a report broken on the line that holds a password (no colon after LocalID): quarantined
        broken = report("call-broken").replace(
            b"LocalID: sip:alice@example.org",
            f"LocalID <sip:1001:{S['SIP broken report']}@pbx.invalid>".encode(),
        )
        assert status(udp_exchange(sip_port, publish(sip_port, broken))) == 400
        # a phone whose From carries its password, found by its LocalMAC; its local direction
        # is implausible (MOS 9.9), so that one is quarantined with where it came from
        from_pw = report("call-from", mos="9.9").replace(
            b"LocalAddr:", f"LocalMAC: {SIP_DEVICE_MAC}\r\nLocalAddr:".encode()
        )
        sender = f"sip:1001:{S['SIP From']}@pbx.invalid"
        assert status(udp_exchange(sip_port, publish(sip_port, from_pw, sender=sender))) == 200

        # SNMP traps (v2c, with the secret community) and a v3 inform (secret passphrases)
        v2c = ["-v2c", "-c", S["SNMP community"]]
        trap = [ADMIN_PASSWORD, "s", S["trap secret field"], LINE1_URI, "s", TRAP_URI]
        notify(tmp_path, "snmptrap", trap_port, v2c, *trap)
        # a value broken mid-secret: text where the profile reads an Integer32 (quarantined)
        notify(tmp_path, "snmptrap", trap_port, v2c, PPPOE_LINK, "s", TRAP_BROKEN)
        v3 = ["-v3", "-u", "labops", "-l", "authPriv", "-a", "SHA-256", "-A", S["v3 auth passphrase"]]
        v3 += ["-x", "AES", "-X", S["v3 priv passphrase"]]
        inform = [FIRMWARE, "s", "3.7.0.1", ADMIN_PASSWORD, "s", S["v3 inform secret field"]]
        notify(tmp_path, "snmpinform", trap_port, v3, *inform)  # acknowledged once stored

        def records() -> list[dict[str, Any]]:
            return json_lines(hookflash("query", "--format", "json", "--data-dir", data).stdout)

        def arrived(rows: list[dict[str, Any]]) -> dict[str, bool]:
            def has(source: str, kind: str, name: str, value: object) -> bool:
                return any(
                    r["source"] == source and r["kind"] == kind and r["fields"].get(name) == value
                    for r in rows
                )

            sip_calls = [r["fields"]["call_id"] for r in rows if r["source"] == "sip"]
            return {
                "poll": has("snmp", "config", "provisioning_url", "https://u:***@prov.invalid/x"),
                "trap": has("snmp", "registration", "line1_uri", "sip:1001:***@pbx.invalid"),
                "v3 inform": has("snmp", "firmware", "version", "3.7.0.1"),
                "sip": sip_calls.count("call-secret") == 2 and sip_calls.count("call-from") == 1,
            }

        eventually(lambda: all(arrived(records()).values()), timeout=15, what="every source's records")
        rows = records()
        quarantine = json_lines(hookflash("quarantine", "--format", "json", "--data-dir", data).stdout)
        export = tmp_path / "export.json"
        exported = hookflash("privacy", "export", "acct-a", "-o", export, "--data-dir", data)
        assert exported.returncode == 0, exported.stderr
        cli_output += [json.dumps(rows), json.dumps(quarantine), exported.stdout, exported.stderr]
        running = contents(data, " (while running)")  # the WALs before the checkpoint at the stop
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    stdout, stderr = out.read_text(), err.read_text()
    assert proc.returncode == 0, stderr[-3000:]

    # Positive evidence: each source's data went through, the secrets in it masked or left out.
    assert all(arrived(rows).values()), arrived(rows)
    config_fields = [r["fields"] for r in rows if r["kind"] == "config" and r["source"] == "snmp"]
    assert config_fields and not any("admin_password" in f for f in config_fields)  # never asked
    remote_ids = {r["fields"].get("remote_id") for r in rows if r["fields"].get("call_id") == "call-secret"}
    assert remote_ids == {"<sip:2002:***@pbx.invalid>"}
    reasons = [q["reason"] for q in quarantine if q["source"] == "sip"]
    assert any(r.startswith("vq-rtcpxr line 3:") for r in reasons), reasons  # the broken report
    assert any("mos (MOSLQ) 9.9" in r for r in reasons), reasons  # call-from's local direction
    assert any(q["source"] == "snmp_trap" and "pppoe_link" in q["reason"] for q in quarantine), quarantine
    exported_text = export.read_text()
    assert "https://u:***@prov.invalid/x" in exported_text and "admin_password" not in exported_text
    engine = json.loads((data / "snmp-engine.json").read_text())
    assert set(engine) == {"engine_id", "boots"}

    # Nothing hookflash wrote holds a secret: every file under the data dir (WAL included),
    # the export, its stdout and stderr, and what its CLI printed.
    assert any(name.endswith("-wal (while running)") for name in running), sorted(running)
    places = {**running, **contents(data), "export.json": export.read_bytes()}
    assert "data/telemetry.db" in places and "data/registry.db" in places, sorted(places)
    places |= {
        "stdout": stdout.encode(),
        "stderr": stderr.encode(),
        "CLI output": "\n".join(cli_output).encode(),
    }
    engine_id = bytes.fromhex(engine["engine_id"])
    needles = {name: [value.encode()] for name, value in SECRETS.items()}
    for name, length in (("v3 auth passphrase", 32), ("v3 priv passphrase", 16)):
        key = localized_key(SECRETS[name], engine_id, length)  # the key it becomes, raw or in hex
        needles[f"{name}, localized"] = [key, key.hex().encode(), key.hex().upper().encode()]
    leaks = {
        name: sorted(where for where, content in places.items() if any(n in content for n in values))
        for name, values in needles.items()
    }
    assert {name: where for name, where in leaks.items() if where} == {}
