"""Revoke-to-stop latency at 1,000 devices.

A collector runs (in this process, on its own event loop thread) against 500 SNMP devices
served by net-snmp snmpd on loopback and 500 MQTT phones on a mosquitto broker, both
started here. Accounts are then revoked one after another, and for each we measure the
time from the status change being committed to the running collector confirming that
collection stopped (gate closed, polls cancelled, subscriptions dropped, in-flight
records purged): the `stop_latency_ms` a receipt reports.

Two paths are measured:
- cross-process: with `--backend sqlite` (the default) the revocation is written through a
  separate registry connection to registry.db, as the CLI on the collector's host does; the
  collector notices it by polling (`lifecycle_poll_s`). With `--backend postgres` the
  registry is in a PostgreSQL server started here (tests/postgres.py, fsync on), and each
  revocation is `hookflash --database-url URL accounts revoke` in a process of its own, in
  a folder of its own, as a billing host runs it; the collector is woken by the NOTIFY
  the status change sends in its transaction.
- in-process: through the collector's own deactivator, as the HTTP API does.

Usage: python bench/revoke_latency.py [--quick] [--backend sqlite|postgres]
(needs mosquitto and snmpd installed; postgres: Debian's postgresql server binaries)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from collector.config import MqttConfig, ServiceConfig, SnmpConfig, SnmpCredential  # noqa: E402
from collector.retention import load_policy  # noqa: E402
from collector.runtime.deactivation import build_deactivator  # noqa: E402
from collector.sinks.sqlite import EmbeddedStore  # noqa: E402
from factories import (  # noqa: E402
    HT812_AGENT,
    mqtt_device,
    snmp_device,
)
from postgres import PASSWORD_ENV, Postgres  # noqa: E402
from provisioning.receipts import Action  # noqa: E402
from provisioning.registry import Registry, open_registry_db  # noqa: E402
from runner import RunningService, eventually  # noqa: E402
from services import Mosquitto, Snmpd  # noqa: E402

DEVICES, PER_ACCOUNT, AGENTS = 1000, 10, 4
AGENT_VALUES = HT812_AGENT


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (under 60 s)")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    runs = 12 if args.quick else 40
    work = Path(tempfile.mkdtemp(prefix="hookflash-bench-"))
    agents = [Snmpd(work / f"snmpd{i}", overrides=AGENT_VALUES).start() for i in range(AGENTS)]
    broker = Mosquitto(work / "mosquitto").start()
    stack = ExitStack()
    try:
        url = None
        if args.backend == "postgres":
            server = stack.enter_context(Postgres(fsync=True))
            os.environ[PASSWORD_ENV] = server.password
            url = server.create_database("hookflash")
        cfg = ServiceConfig(
            data_dir=work / "data",
            database_url=url,
            snmp=SnmpConfig(interval_s=10, timeout_s=2, retries=0),
            mqtt=MqttConfig(enabled=True, port=broker.port, client_id="bench"),
            credentials={"default": SnmpCredential.model_validate({"community": "public"})},
        )
        devices = []
        for n in range(DEVICES):
            account = f"acct-{n // PER_ACCOUNT:04d}"
            if n % 2:
                devices.append(mqtt_device(n, account))
            else:
                port = agents[n % AGENTS].port
                devices.append(
                    snmp_device(n, account, port).model_copy(update={"profile": "grandstream-ht8xx"})
                )
        registry = (
            Registry(cfg.data_dir / "registry.db")
            if url is None
            else Registry(open_registry_db(url), key_path=cfg.data_dir / "registry.key")
        )
        registry.import_devices(devices, source="bench")
        registry.close()
        accounts = sorted({d.account_id for d in devices})
        cross: list[float] = []
        local: list[float] = []
        with RunningService(cfg) as running:
            service = running.service
            assert service is not None
            eventually(
                lambda: len(broker.subscribed_topics("bench")) == DEVICES // 2,
                timeout=30,
                what="subscriptions",
            )
            eventually(
                lambda: len(running.stats.devices_seen) >= DEVICES // 2,
                timeout=30,
                what="every SNMP device polled once",
            )
            revoke = _cli_revoke(url, work / "billing-host") if url else _connection_revoke(cfg.data_dir)
            rng = random.Random(1)
            for i in range(runs):
                time.sleep(rng.uniform(0, 0.25))  # land anywhere in the collector's poll cycle
                cross.append(revoke(accounts[2 * i]))
                inside = asyncio.run_coroutine_threadsafe(
                    _revoke_inside(service, accounts[2 * i + 1]), running.loop
                ).result(30)
                local.append(inside)
                print(
                    f"run {i + 1:2d}: cross-process {cross[-1]:7.1f} ms, in-process {local[-1]:6.1f} ms",
                    flush=True,
                )
            polls, stored = running.stats.polls_sent, running.stats.stored
        print(f"collector during the runs: {polls} polls sent, {stored} records stored")
        print(f"in-process: p50 {statistics.median(local):.1f} ms, p99 {percentile(local, 99):.1f} ms")
        how = "LISTEN/NOTIFY" if url else f"registry polled every {cfg.lifecycle_poll_s * 1000:.0f} ms"
        print(
            f"cross-process: p50 {statistics.median(cross):.1f} ms,"
            f" p99 {percentile(cross, 99):.1f} ms ({how})"
        )
        print(
            f"RESULT backend={args.backend} revoke_stop_p50_ms={statistics.median(cross):.1f} "
            f"revoke_stop_p99_ms={percentile(cross, 99):.1f} inprocess_p99_ms={percentile(local, 99):.1f}"
        )
    finally:
        stack.close()
        broker.stop()
        for agent in agents:
            agent.stop()


def _connection_revoke(data_dir: Path) -> Callable[[str], float]:
    """Through another connection to registry.db: the CLI's path on the collector's host."""
    other = Registry(data_dir / "registry.db")
    store = EmbeddedStore.open(data_dir / "telemetry.db")
    outside = build_deactivator(other, [store.sink, store.quarantine], load_policy())

    def revoke(account: str) -> float:
        receipt, _ = outside.request(Action.REVOKE, account, "bench")
        done = asyncio.run(outside.process(receipt))
        return float(done.result["stop_latency_ms"])

    return revoke


def _cli_revoke(url: str, folder: Path) -> Callable[[str], float]:
    """`hookflash accounts revoke` in a process of its own with only the database URL."""
    folder.mkdir()

    def revoke(account: str) -> float:
        args = [sys.executable, "-m", "collector.cli.main", "--database-url", url]
        args += ["accounts", "revoke", account, "--reason", "bench", "--format", "json"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out = subprocess.run(args, capture_output=True, text=True, cwd=folder, env=env, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"hookflash accounts revoke {account}: {out.returncode}: {out.stderr}")
        result = json.loads(out.stdout.splitlines()[-1])["result"]
        assert result["acknowledged_by"], result
        return float(result["stop_latency_ms"])

    return revoke


async def _revoke_inside(service: object, account: str) -> float:
    from collector.runtime.service import Service

    assert isinstance(service, Service)
    started = time.perf_counter()
    receipt, _ = service.deactivator.request(Action.REVOKE, account, "bench")
    done = await service.deactivator.process(receipt)
    assert done.result["acknowledged_by"], done.result
    return (
        float(done.result["stop_latency_ms"])
        if done.result["stop_latency_ms"]
        else ((time.perf_counter() - started) * 1000)
    )


if __name__ == "__main__":
    main()
