"""Crash consistency under chaos: hookflash killed with SIGKILL at random moments, and
restarted each time, while it ingests a QoS 1 stream from a real mosquitto, sends through
its spool to a real VictoriaMetrics (stopped for a while, so that a backlog is replayed
under the kills), sweeps retention every half second, and erases two accounts revoked
from the command line between kills.

Afterwards: every message the broker acknowledged to the publisher, of an account still
active, is stored exactly once in SQLite and reached VictoriaMetrics exactly once; nothing
of a revoked account is left in SQLite (nothing erased came back with a redelivery or a
replay). VictoriaMetrics runs with `-dedup.minScrapeInterval=1ms`: a point carries its
observation time, so a batch posted again after a crash between the post and the spool's
cursor is the same samples again (README "Stores").

Used by bench/chaos.py and tests/integration/test_chaos.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from factories import mqtt_device
from provisioning.registry import Registry
from runner import eventually, hookflash
from services import Mosquitto, VictoriaMetrics

ACCOUNTS = [f"acct-{n}" for n in range(5)]
REVOKED = ("acct-3", "acct-4")


def schedule(kills: int) -> tuple[dict[str, int], tuple[int, int]]:
    """After which kill each account is revoked, and after which kills VictoriaMetrics is
    stopped and started again; for 20 kills: revocations after 7 and 14, VM down 4 to 10."""
    revoked = {REVOKED[0]: max(1, kills * 7 // 20), REVOKED[1]: max(1, kills * 14 // 20)}
    return revoked, (max(1, kills // 5), max(2, kills // 2))


@dataclass
class Chaos:
    kills: int = 0
    acked: int = 0
    kept_expected: int = 0
    sqlite_missing: int = 0
    sqlite_duplicates: int = 0
    remote_missing: int = 0
    remote_duplicates: int = 0
    resurrected: int = 0
    seconds: float = 0.0
    moments: list[str] = field(default_factory=list)

    def result(self) -> str:
        return (
            f"RESULT kills={self.kills} acked={self.acked} kept={self.kept_expected} "
            f"lost={self.sqlite_missing + self.remote_missing} "
            f"duplicated={self.sqlite_duplicates + self.remote_duplicates} resurrected={self.resurrected}"
        )


class Stream(threading.Thread):
    """QoS 1 messages numbered by `uptime_s`, round-robin over the phones, observed 1/rate
    apart (never ahead of the clock: VictoriaMetrics does not export future samples);
    `acked` holds the numbers the broker took."""

    def __init__(self, broker: Mosquitto, phones: list[str], rate: float) -> None:
        super().__init__(daemon=True)
        self._phones, self._period = phones, 1.0 / rate
        self.acked: set[int] = set()
        self.device_of: dict[int, str] = {}
        self._pending: dict[int, int] = {}
        self._early: set[int] = set()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="chaos-phones")
        self.client.max_inflight_messages_set(0)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_publish(self, _c: object, _u: object, mid: int, _rc: object, _p: object) -> None:
        with self._lock:  # never held around paho calls: paho calls this under its own locks
            number = self._pending.pop(mid, None)
            if number is None:
                self._early.add(mid)  # the PUBACK came before run() noted the mid
            else:
                self.acked.add(number)

    def run(self) -> None:
        base = time.time()
        number = 0
        while not self._stopping.is_set():
            phone = self._phones[number % len(self._phones)]
            body = json.dumps({"ts": base + number * self._period, "uptime_s": number}).encode()
            info = self.client.publish(f"hookflash/{phone}/performance", body, qos=1)
            with self._lock:
                if info.mid in self._early:
                    self._early.discard(info.mid)
                    self.acked.add(number)
                else:
                    self._pending[info.mid] = number
            self.device_of[number] = phone
            number += 1
            time.sleep(self._period)

    def finish(self) -> None:
        self._stopping.set()
        self.join(10)
        deadline = time.monotonic() + 30
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.05)
        self.client.disconnect()
        self.client.loop_stop()


_STARTED: list[subprocess.Popen[bytes]] = []  # killed when a run ends, even by a failure


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "collector.cli.main", "run", "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOOKFLASH_INFLUX_TOKEN": "chaos-token", "PYTHONUNBUFFERED": "1"},
        )
    _STARTED.append(process)
    return process


def _kill_leftovers() -> None:
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _stored(data: Path) -> list[tuple[int, str]]:
    db = sqlite3.connect(data / "telemetry.db")
    try:
        rows = db.execute(
            "SELECT json_extract(fields, '$.uptime_s'), account_id FROM telemetry WHERE kind = 'performance'"
        ).fetchall()
        return [(int(n), str(a)) for n, a in rows]
    finally:
        db.close()


def _unsent(spool: Path) -> int:
    """Bytes of the spool's segments after its cursor (what it has yet to send)."""
    cursor = json.loads((spool / "cursor.json").read_text()) if (spool / "cursor.json").exists() else None
    segment, offset = (cursor["segment"], cursor["offset"]) if cursor else (0, 0)
    total = 0
    for path in spool.glob("*.jsonl"):
        number = int(path.stem)
        if number >= segment:
            total += path.stat().st_size - (offset if number == segment else 0)
    return total


def run(work: Path, kills: int = 20, rate: float = 300.0, seed: int = 7) -> Chaos:
    rng = random.Random(seed)
    revoked_after, vm_down = schedule(kills)
    outcome = Chaos()
    data = work / "data"
    phones = [mqtt_device(n, ACCOUNTS[n % len(ACCOUNTS)]) for n in range(10)]
    Registry(data / "registry.db").import_devices(phones, source="chaos")
    account_of = {p.id: p.account_id for p in phones}
    started = time.monotonic()
    with (
        Mosquitto(work / "mosquitto", persistence=True) as broker,
        VictoriaMetrics(work / "vm", dedup=True) as vm,
        contextlib.ExitStack() as cleanup,  # exited first: no hookflash outlives the run
    ):
        cleanup.callback(_kill_leftovers)
        config = work / "hookflash.toml"
        config.write_text(
            'data_dir = "data"\nsweep_interval_s = 0.5\n[snmp]\nenabled = false\n'
            f'[mqtt]\nenabled = true\nport = {broker.port}\nclient_id = "hf-chaos"\nreceive_maximum = 300\n'
            f'[influx]\nenabled = true\nurl = "{vm.url}"\nbatch_lines = 500\nserver = "victoriametrics"\n'
            "[spool]\nflush_on_stop_s = 1\n"
        )
        log = work / "hookflash.log"
        process = _start(config, log)
        eventually(lambda: len(broker.subscribed_topics("hf-chaos")) == len(phones), 30, "subscribed")
        stream = Stream(broker, [p.id for p in phones], rate)
        stream.start()
        for kill in range(1, kills + 1):
            time.sleep(rng.uniform(0.3, 2.0))
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            outcome.kills += 1
            if kill == vm_down[0]:
                vm.stop()
                outcome.moments.append(f"kill {kill}: VictoriaMetrics stopped, the spool grows")
            if kill == vm_down[1]:
                vm.start()
                outcome.moments.append(
                    f"kill {kill}: VictoriaMetrics back, the spool replays under the next kills"
                )
            for account, after in revoked_after.items():
                if kill == after:
                    done = hookflash("accounts", "revoke", account, "--reason", "chaos", "--data-dir", data)
                    # 3: no collector was running to erase VictoriaMetrics: pending until it is
                    assert done.returncode in (0, 3), done.stderr
                    outcome.moments.append(f"kill {kill}: {account} revoked from the command line")
            process = _start(config, log)
        outcome.moments.append(f"kills done after {time.monotonic() - started:.1f}s")
        stream.finish()
        kept = {n for n in stream.acked if account_of[stream.device_of[n]] not in REVOKED}
        outcome.acked, outcome.kept_expected = len(stream.acked), len(kept)

        def all_stored() -> bool:
            return kept <= {n for n, _ in _stored(data)}

        settling = time.monotonic()
        eventually(all_stored, 120, "every acknowledged message of an active account stored")
        outcome.moments.append(f"all stored {time.monotonic() - settling:.1f}s after the last kill's restart")
        spool = data / "spool" / "influx"

        def sent_on() -> bool:
            remote = {int(v) for s in vm.export('{__name__="performance_uptime_s"}') for v in s["values"]}
            return kept <= remote

        with contextlib.suppress(AssertionError):  # what did not arrive is counted below
            eventually(sent_on, 120, "the spool sent on")

        def revocations_done() -> bool:
            out = [
                hookflash("receipts", "list", "--account", a, "--format", "json", "--data-dir", data).stdout
                for a in REVOKED
            ]
            return all(json.loads(line)["status"] == "done" for text in out for line in text.splitlines())

        eventually(revocations_done, 60, "every revocation's receipt done (VictoriaMetrics erased)")
        outcome.moments.append(f"all sent on {time.monotonic() - settling:.1f}s after it")
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        stored = _stored(data)
        numbers = [n for n, a in stored if a not in REVOKED]
        outcome.sqlite_missing = len(kept - set(numbers))
        outcome.sqlite_duplicates = len(numbers) - len(set(numbers))
        remote_revoked = sum(
            len(s["values"])
            for s in vm.export('{__name__=~".+"}')
            if s["metric"].get("account_id") in REVOKED
        )
        outcome.resurrected = sum(1 for _n, a in stored if a in REVOKED) + remote_revoked
        samples = [
            int(v)
            for s in vm.export('{__name__="performance_uptime_s"}')
            if s["metric"].get("account_id") not in REVOKED
            for v in s["values"]
        ]
        outcome.remote_missing = len(kept - set(samples))
        outcome.remote_duplicates = len(samples) - len(set(samples))
        outcome.moments.append(f"spool left unsent: {_unsent(spool)} bytes")
    outcome.seconds = time.monotonic() - started
    return outcome
