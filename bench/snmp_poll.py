"""End-to-end SNMP v2c polling rate: hookflash versus pysnmp's get_cmd, same agents, same run.

N simulated devices (Grandstream HT812s made of net-snmp snmpd instances with `override`
lines, several devices per agent) are polled as fast as the collector can go:
request sent → response decoded → records gated, tagged and written to the SQLite store.
One poll is counted when its `performance` record has been written. Both sides ask for
the same 16 scalar OIDs (the HT8xx profile without its interface table). The baseline is
pysnmp 7's high-level `get_cmd` (lookupMib=False) asking the same agents for the same
OIDs (16 requests in flight: it is CPU-bound well below that), counting responses only
(no decoding, no store).
CPU is this process's user+system time; snmpd runs in its own processes.

--soak keeps 10,000 devices on a 60 s interval for 5 minutes and reports missed cycles
(a device whose gap between two stored polls exceeded 1.5 intervals) and the RSS.

Usage: python bench/snmp_poll.py [--quick] [--devices N] [--soak]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from pysnmp.hlapi.v3arch.asyncio import (  # noqa: E402
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    get_cmd,
)

from collector.config import ServiceConfig, SnmpConfig, SnmpCredential  # noqa: E402
from collector.profiles import load_profiles  # noqa: E402
from factories import HT812_AGENT, snmp_device  # noqa: E402
from provisioning.registry import Registry  # noqa: E402
from runner import RunningService, eventually  # noqa: E402
from services import Snmpd  # noqa: E402

CONCURRENCY = 256
PYSNMP_CONCURRENCY = 16


def profile_dir(work: Path) -> Path:
    folder = work / "profiles"
    folder.mkdir(exist_ok=True)
    (folder / "bench-ht812.toml").write_text(BENCH_PROFILE)
    return folder


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# The same 16 scalar OIDs the pysnmp baseline asks for: the HT8xx profile without the
# interface table it inherits (a GET-only profile drops tables).
BENCH_PROFILE = 'extends = ["grandstream-ht8xx"]\ngetbulk = false\n'


def provision(data_dir: Path, agents: list[Snmpd], n: int) -> None:
    devices = [
        snmp_device(i, f"acct-{i // 10:05d}", agents[i % len(agents)].port).model_copy(
            update={"profile": "bench-ht812"}
        )
        for i in range(n)
    ]
    Registry(data_dir / "registry.db").import_devices(devices, source="bench")


def hookflash_rate(work: Path, agents: list[Snmpd], n: int, seconds: float) -> tuple[float, float]:
    cfg = ServiceConfig(
        data_dir=work / "hookflash",
        profile_dirs=[profile_dir(work)],
        # Demand (devices / interval = 4,000 polls/s for 1,000 devices) above what one core
        # can serve, so the measured rate is the collector's capacity.
        snmp=SnmpConfig(interval_s=n / 4000, timeout_s=2, retries=0, max_in_flight=CONCURRENCY, tick_s=0.01),
        credentials={"default": SnmpCredential.model_validate({"community": "public"})},
    )
    provision(cfg.data_dir, agents, n)
    with RunningService(cfg) as running:
        stats = running.stats
        eventually(lambda: stats.stored_by_kind["performance"] >= n, timeout=60, what="warm-up")
        time.sleep(1.0)
        polls0, cpu0, t0 = stats.stored_by_kind["performance"], cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        polls1, cpu1, t1 = stats.stored_by_kind["performance"], cpu_seconds(), time.monotonic()
        failed = stats.polls_failed
    elapsed = t1 - t0
    print(
        f"hookflash: {polls1 - polls0} polls in {elapsed:.1f}s, {failed} failed, "
        f"CPU {100 * (cpu1 - cpu0) / elapsed:.0f}% of one core",
        flush=True,
    )
    return (polls1 - polls0) / elapsed, (cpu1 - cpu0) / elapsed


async def _pysnmp(agents: list[Snmpd], seconds: float) -> tuple[int, int]:
    oids = [s.oid for s in load_profiles().get("grandstream-ht8xx").snmp if s.kind.value != "diagnostic"]
    engine = SnmpEngine()
    targets = [await UdpTransportTarget.create(("127.0.0.1", a.port), timeout=2, retries=0) for a in agents]
    deadline = time.monotonic() + seconds
    done = failed = 0

    async def worker(k: int) -> None:
        nonlocal done, failed
        while time.monotonic() < deadline:
            error, _status, _index, _binds = await get_cmd(
                engine,
                CommunityData("public", mpModel=1),
                targets[k % len(targets)],
                ContextData(),
                *(ObjectType(ObjectIdentity(o)) for o in oids),
                lookupMib=False,
            )
            done += not error
            failed += bool(error)

    # pysnmp is CPU-bound far below this concurrency; more in flight only overflows its
    # socket's receive buffer (it does not enlarge it) and turns answers into timeouts.
    await asyncio.gather(*(worker(k) for k in range(PYSNMP_CONCURRENCY)))
    engine.close_dispatcher()
    return done, failed


def pysnmp_rate(agents: list[Snmpd], seconds: float) -> tuple[float, float]:
    cpu0, t0 = cpu_seconds(), time.monotonic()
    done, failed = asyncio.run(_pysnmp(agents, seconds))
    elapsed, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
    print(
        f"pysnmp get_cmd: {done} polls in {elapsed:.1f}s, {failed} failed, "
        f"CPU {100 * cpu / elapsed:.0f}% of one core",
        flush=True,
    )
    return done / elapsed, cpu / elapsed


def soak(work: Path, agents: list[Snmpd], n: int, interval: float, minutes: float) -> None:
    cfg = ServiceConfig(
        data_dir=work / "soak",
        profile_dirs=[profile_dir(work)],
        snmp=SnmpConfig(interval_s=interval, timeout_s=2, retries=1, max_in_flight=CONCURRENCY),
        credentials={"default": SnmpCredential.model_validate({"community": "public"})},
    )
    provision(cfg.data_dir, agents, n)
    peak_rss = 0.0
    with RunningService(cfg) as running:
        end = time.monotonic() + minutes * 60
        while time.monotonic() < end:
            time.sleep(10)
            peak_rss = max(peak_rss, rss_mib())
            print(
                f"  soak: {running.stats.stored_by_kind['performance']} polls stored, "
                f"{running.stats.polls_failed} failed, RSS {rss_mib():.0f} MiB",
                flush=True,
            )
    db = sqlite3.connect(cfg.data_dir / "telemetry.db")
    rows = db.execute(
        "SELECT device_id, observed_at FROM telemetry WHERE kind = 'performance'"
        " ORDER BY device_id, observed_at"
    ).fetchall()
    per_device: dict[str, list[float]] = {}
    for device, at in rows:
        per_device.setdefault(device, []).append(at)
    missed = sum(
        1
        for times in per_device.values()
        if any(b - a > 1.5 * interval for a, b in itertools.pairwise(times))
    )
    never = n - len(per_device)
    print(
        f"soak: {n} devices, {interval:.0f}s interval, {minutes:.0f} min: {len(rows)} polls stored, "
        f"devices with a missed cycle {missed}, never polled {never}, peak RSS {peak_rss:.0f} MiB"
    )
    print(f"RESULT soak_devices={n} missed_cycles={missed} never_polled={never} peak_rss_mib={peak_rss:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter measurement (under 60 s)")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--soak", action="store_true", help="10,000 devices, 60 s interval, 5 minutes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hookflash-snmp-bench-"))
    agents = [Snmpd(work / f"snmpd{i}", overrides=HT812_AGENT).start() for i in range(args.agents)]
    try:
        if args.soak:
            soak(work, agents, 10_000, 60.0, 5.0)
            return
        seconds = 8.0 if args.quick else 20.0
        ours, our_cpu = hookflash_rate(work, agents, args.devices, seconds)
        theirs, their_cpu = pysnmp_rate(agents, seconds)
        print(
            f"per core: hookflash {ours / max(our_cpu, 1e-9):.0f} polls/s, "
            f"pysnmp {theirs / max(their_cpu, 1e-9):.0f} polls/s"
        )
        print(
            f"RESULT hookflash_polls_per_s={ours:.0f} pysnmp_polls_per_s={theirs:.0f} "
            f"ratio_vs_pysnmp={ours / theirs:.1f}"
        )
    finally:
        for agent in agents:
            agent.stop()


if __name__ == "__main__":
    main()
