"""End-to-end SNMP v2c polling rate: hookflash versus pysnmp's get_cmd and Prometheus'
snmp_exporter, same agents, same OIDs, same run.

N simulated devices (Grandstream HT812s made of net-snmp snmpd instances with `override`
lines, several devices per agent) are polled as fast as the collector can go:
request sent → response decoded → records gated, tagged and written to the SQLite store.
One poll is counted when its `performance` record has been written. Every side asks for
the same 21 scalar OIDs in one GET (the HT8xx profile without its interface table; the
HT812 agents answer noSuchObject for regStatus3/4, a two-line device).

Baselines, each asking the same agents for the same OIDs:
- pysnmp 7's high-level `get_cmd` (lookupMib=False), in this process, 16 requests in
  flight (it is CPU-bound well below that), counting responses only (no decoding, no store).
- Prometheus' snmp_exporter, the tool a NOC would run instead: Debian's
  `prometheus-snmp-exporter` (0.21) with a generated snmp.yml (module `hookflash_bench`:
  one GET of the OIDs, v2c, 2 s timeout, no retries, like hookflash here), on GOMAXPROCS=1,
  driven by `wrk -c50 -t1` whose Lua script rotates the `target` over the agents. A scrape
  is counted when its HTTP answer is a 2xx (more than 1 % failed ones abort the bench); it
  decodes the values and renders them as Prometheus text, and stores nothing. Before the
  rounds, one scrape of each agent is checked against what the agent serves (read with
  pysnmp): every OID with the agent's value, none for the absent ones, or the bench fails.

CPU: hookflash's and pysnmp's is this process's user+system time (getrusage: the service
loop and its writer thread); the exporter's is its process's utime+stime (all threads)
from /proc/<pid>/stat over the measured window. snmpd runs in its own processes and wrk in
its own: no side is charged for them (each side's line shows what they used). "Per core"
is work done per CPU-second: polls (or scrapes) / the side's CPU seconds.

Each round measures hookflash, then pysnmp, then the exporter, one at a time (the exporter
idles while the others run); three rounds, 20 s a side (--quick: 7 s, about 80 s in all),
and each figure on the RESULT line is the median of the three rounds' (the ratios are the
medians of the rounds' own ratios: ratio_vs_exporter_per_core is hookflash's polls per
CPU-second over the exporter's scrapes per CPU-second).

The exporter side needs the Debian packages prometheus-snmp-exporter and wrk (`apt-get
install -y --no-install-recommends prometheus-snmp-exporter wrk`); the bench installs
nothing and exits 2 when either is missing. --soak needs neither.

--soak keeps 10,000 devices on a 60 s interval for 5 minutes and reports missed cycles
(a device whose gap between two stored polls exceeded 1.5 intervals) and the RSS.

Usage: python bench/snmp_poll.py [--quick] [--devices N] [--agents N] [--soak]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from exporter import (  # noqa: E402
    Metric,
    SnmpExporter,
    check_scrape,
    exporter_version,
    lua_rotation,
    missing_packages,
    module_config,
    proc_cpu_seconds,
    run_wrk,
)
from pysnmp.hlapi.v3arch.asyncio import (  # noqa: E402
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    get_cmd,
)
from pysnmp.proto import rfc1905  # noqa: E402

from collector.config import ServiceConfig, SnmpConfig, SnmpCredential  # noqa: E402
from collector.profiles import load_profiles  # noqa: E402
from collector.profiles.model import SnmpFieldSpec  # noqa: E402
from factories import HT812_AGENT, snmp_device  # noqa: E402
from provisioning.registry import Registry  # noqa: E402
from runner import RunningService, eventually  # noqa: E402
from services import Snmpd  # noqa: E402

CONCURRENCY = 256
PYSNMP_CONCURRENCY = 16
ROUNDS = 3
COMMUNITY = "public"
TIMEOUT_S = 2.0
MAX_FAILED_SHARE = 0.01  # of the exporter's scrapes; more and the baseline measures errors
ABSENT = (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView)


@dataclass(frozen=True)
class Side:
    """One side's measured window: work per second of wall time and per CPU-second."""

    per_s: float
    per_core: float


@dataclass(frozen=True)
class Round:
    hookflash: Side
    pysnmp: Side
    exporter: Side


def profile_dir(work: Path) -> Path:
    folder = work / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
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


# The same 21 scalar OIDs the baselines ask for: the HT8xx profile without the interface
# table it inherits (a GET-only profile drops tables).
BENCH_PROFILE = 'extends = ["grandstream-ht8xx"]\ngetbulk = false\n'


def bench_fields() -> list[SnmpFieldSpec]:
    return [s for s in load_profiles().get("grandstream-ht8xx").snmp if s.kind.value != "diagnostic"]


def provision(data_dir: Path, agents: list[Snmpd], n: int) -> None:
    devices = [
        snmp_device(i, f"acct-{i // 10:05d}", agents[i % len(agents)].port).model_copy(
            update={"profile": "bench-ht812"}
        )
        for i in range(n)
    ]
    Registry(data_dir / "registry.db").import_devices(devices, source="bench")


@dataclass(frozen=True)
class Snapshot:
    """The wall clock and CPU seconds used so far, at one moment: this process's (hookflash,
    pysnmp), the agents' snmpd and this process's finished children (wrk)."""

    at: float
    own: float
    snmpd: float
    children: float

    @classmethod
    def take(cls, agents: Sequence[Snmpd]) -> Snapshot:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        snmpd = sum(proc_cpu_seconds(a.pid) for a in agents if a.pid is not None)
        return cls(time.monotonic(), cpu_seconds(), snmpd, kids.ru_utime + kids.ru_stime)


def report(name: str, counted: tuple[int, int, float], cpu: float, s0: Snapshot, s1: Snapshot) -> Side:
    """`counted`: (done, failed, over how many seconds); `cpu`: the side's CPU seconds between
    the two snapshots. Also shows what the agents (and wrk) used, which no side is charged."""
    done, failed, elapsed = counted
    window = s1.at - s0.at
    unit = "scrapes" if name == "snmp_exporter" else "polls"
    wrk = s1.children - s0.children
    outside = f"snmpd {100 * (s1.snmpd - s0.snmpd) / window:.0f}%" + (
        f", wrk {100 * wrk / window:.0f}%" if wrk else ""
    )
    print(
        f"  {name}: {done} {unit} in {elapsed:.1f}s, {failed} failed, CPU {100 * cpu / window:.0f}% of "
        f"one core, {done / max(cpu, 1e-9):.0f} {unit} per CPU-second (not counted: {outside})",
        flush=True,
    )
    return Side(done / elapsed, done / max(cpu, 1e-9))


def hookflash_rate(work: Path, agents: list[Snmpd], n: int, seconds: float) -> Side:
    cfg = ServiceConfig(
        data_dir=work / "hookflash",
        profile_dirs=[profile_dir(work)],
        # Demand (devices / interval = 4,000 polls/s for 1,000 devices) above what one core
        # can serve, so the measured rate is the collector's capacity.
        snmp=SnmpConfig(
            interval_s=n / 4000, timeout_s=TIMEOUT_S, retries=0, max_in_flight=CONCURRENCY, tick_s=0.01
        ),
        credentials={"default": SnmpCredential.model_validate({"community": COMMUNITY})},
    )
    provision(cfg.data_dir, agents, n)
    with RunningService(cfg) as running:
        stats = running.stats
        eventually(lambda: stats.stored_by_kind["performance"] >= n, timeout=60, what="warm-up")
        time.sleep(1.0)
        polls0, failed0, s0 = stats.stored_by_kind["performance"], stats.polls_failed, Snapshot.take(agents)
        time.sleep(seconds)
        polls1, failed1, s1 = stats.stored_by_kind["performance"], stats.polls_failed, Snapshot.take(agents)
    return report("hookflash", (polls1 - polls0, failed1 - failed0, s1.at - s0.at), s1.own - s0.own, s0, s1)


async def _get(engine: SnmpEngine, target: UdpTransportTarget, oids: Sequence[str]) -> tuple[Any, ...]:
    return await get_cmd(
        engine,
        CommunityData(COMMUNITY, mpModel=1),
        target,
        ContextData(),
        *(ObjectType(ObjectIdentity(o)) for o in oids),
        lookupMib=False,
    )


async def _pysnmp(agents: list[Snmpd], seconds: float) -> tuple[int, int]:
    oids = [s.oid for s in bench_fields()]
    engine = SnmpEngine()
    targets = [
        await UdpTransportTarget.create(("127.0.0.1", a.port), timeout=TIMEOUT_S, retries=0) for a in agents
    ]
    deadline = time.monotonic() + seconds
    done = failed = 0

    async def worker(k: int) -> None:
        nonlocal done, failed
        while time.monotonic() < deadline:
            error, _status, _index, _binds = await _get(engine, targets[k % len(targets)], oids)
            done += not error
            failed += bool(error)

    # pysnmp is CPU-bound far below this concurrency; more in flight only overflows its
    # socket's receive buffer (it does not enlarge it) and turns answers into timeouts.
    await asyncio.gather(*(worker(k) for k in range(PYSNMP_CONCURRENCY)))
    engine.close_dispatcher()
    return done, failed


def pysnmp_rate(agents: list[Snmpd], seconds: float) -> Side:
    s0 = Snapshot.take(agents)
    done, failed = asyncio.run(_pysnmp(agents, seconds))
    s1 = Snapshot.take(agents)
    return report("pysnmp get_cmd", (done, failed, s1.at - s0.at), s1.own - s0.own, s0, s1)


def exporter_metrics() -> list[Metric]:
    """The bench's OIDs as exporter metrics, named after their MIB objects (sysDescr, ...)."""
    metrics = []
    for spec in bench_fields():
        if not spec.mib or spec.syntax is None:
            raise SystemExit(f"{spec.oid}: no mib/syntax in the profile, so no exporter metric type")
        metrics.append(Metric(spec.mib.split("::")[1], spec.oid, spec.syntax))
    return metrics


async def _agent_values(port: int, metrics: Sequence[Metric]) -> dict[str, str | int | None]:
    """What the agent serves for each OID, as the exporter would render it (None: absent)."""
    engine = SnmpEngine()
    target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=TIMEOUT_S, retries=1)
    error, status, _index, binds = await _get(engine, target, [m.oid for m in metrics])
    engine.close_dispatcher()
    if error or status:
        raise SystemExit(f"agent 127.0.0.1:{port} did not answer the check's GET: {error or status}")
    values: dict[str, str | int | None] = {}
    for m, (_oid, value) in zip(metrics, binds, strict=True):
        if isinstance(value, ABSENT):
            values[m.oid] = None
        elif m.type == "PhysAddress48":
            values[m.oid] = ":".join(f"{b:02X}" for b in bytes(value))
        elif m.syntax == "OBJECT IDENTIFIER":
            values[m.oid] = str(value)
        elif m.type == "DisplayString":
            values[m.oid] = bytes(value).decode()
        else:
            values[m.oid] = int(value)
    return values


def check_exporter(exporter: SnmpExporter, agents: list[Snmpd], metrics: Sequence[Metric]) -> None:
    """One plain GET of each agent's scrape; every OID must carry the agent's value."""
    for agent in agents:
        values = asyncio.run(_agent_values(agent.port, metrics))
        problems = check_scrape(exporter.scrape(agent.port), metrics, values, tick_slack=1000)
        if problems:
            raise SystemExit(
                f"snmp_exporter's scrape of 127.0.0.1:{agent.port} does not match the agent:\n  "
                + "\n  ".join(problems)
            )
    served = sum(v is not None for v in values.values())
    print(
        f"snmp_exporter {exporter_version()}: scrapes of {len(agents)} agents checked: {served} of "
        f"{len(metrics)} OIDs in one GET with the agent's values, {len(metrics) - served} absent "
        "on the agent (noSuchObject) and from the scrape",
        flush=True,
    )


def exporter_rate(exporter: SnmpExporter, agents: list[Snmpd], script: Path, seconds: float) -> Side:
    logged0 = len(exporter.errors_logged())
    cpu0, s0 = exporter.cpu_seconds(), Snapshot.take(agents)
    result = run_wrk(f"http://127.0.0.1:{exporter.port}/", script, seconds)
    cpu, s1 = exporter.cpu_seconds() - cpu0, Snapshot.take(agents)
    done = result.requests - result.failed
    logged = len(exporter.errors_logged()) - logged0
    side = report("snmp_exporter", (done, result.failed, result.seconds), cpu, s0, s1)
    if result.failed > MAX_FAILED_SHARE * max(result.requests, 1) or logged > MAX_FAILED_SHARE * done:
        raise SystemExit(
            f"snmp_exporter: {result.failed} failed scrapes, {logged} errors logged: the baseline "
            f"would measure errors (see {exporter.output_path})"
        )
    return side


def start_exporter(work: Path, agents: list[Snmpd], metrics: Sequence[Metric]) -> tuple[SnmpExporter, Path]:
    exporter = SnmpExporter(work / "exporter", module_config(metrics, COMMUNITY, TIMEOUT_S)).start()
    script = work / "exporter" / "rotate.lua"
    script.write_text(lua_rotation([exporter.path(a.port) for a in agents]))
    return exporter, script


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


def compare(work: Path, agents: list[Snmpd], devices: int, seconds: float) -> None:
    metrics = exporter_metrics()
    exporter, script = start_exporter(work, agents, metrics)
    try:
        check_exporter(exporter, agents, metrics)
        run_wrk(f"http://127.0.0.1:{exporter.port}/", script, 1.0)  # warm-up, not measured
        rounds = []
        for r in range(ROUNDS):
            print(f"round {r + 1}/{ROUNDS}:", flush=True)
            rounds.append(
                Round(
                    hookflash_rate(work / f"round{r}", agents, devices, seconds),
                    pysnmp_rate(agents, seconds),
                    exporter_rate(exporter, agents, script, seconds),
                )
            )
    finally:
        exporter.stop()
    summarize(rounds)


def summarize(rounds: Sequence[Round]) -> None:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    ours = med([r.hookflash.per_s for r in rounds])
    ours_core = med([r.hookflash.per_core for r in rounds])
    pysnmp, pysnmp_core = med([r.pysnmp.per_s for r in rounds]), med([r.pysnmp.per_core for r in rounds])
    exp, exp_core = med([r.exporter.per_s for r in rounds]), med([r.exporter.per_core for r in rounds])
    vs_pysnmp = med([r.hookflash.per_s / r.pysnmp.per_s for r in rounds])
    vs_exporter = med([r.hookflash.per_core / r.exporter.per_core for r in rounds])
    print(f"median of {len(rounds)} rounds:")
    print(
        f"  per second: hookflash {ours:.0f} polls, pysnmp {pysnmp:.0f} polls, "
        f"snmp_exporter {exp:.0f} scrapes"
    )
    print(
        f"  per core: hookflash {ours_core:.0f} polls/s, pysnmp {pysnmp_core:.0f} polls/s, "
        f"snmp_exporter {exp_core:.0f} scrapes/s"
    )
    print(
        f"RESULT hookflash_polls_per_s={ours:.0f} pysnmp_polls_per_s={pysnmp:.0f} "
        f"ratio_vs_pysnmp={vs_pysnmp:.1f} exporter_per_s={exp:.0f} exporter_per_core={exp_core:.0f} "
        f"hookflash_per_core={ours_core:.0f} ratio_vs_exporter_per_core={vs_exporter:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter rounds (7 s a side)")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--soak", action="store_true", help="10,000 devices, 60 s interval, 5 minutes")
    args = parser.parse_args()
    if not args.soak and (missing := missing_packages()):
        print(
            "bench/snmp_poll.py: the snmp_exporter baseline needs the Debian packages "
            f"{' and '.join(missing)}:"
            f"\n  apt-get install -y --no-install-recommends {' '.join(missing)}",
            file=sys.stderr,
        )
        sys.exit(2)
    work = Path(tempfile.mkdtemp(prefix="hookflash-snmp-bench-"))
    agents = [Snmpd(work / f"snmpd{i}", overrides=HT812_AGENT).start() for i in range(args.agents)]
    try:
        if args.soak:
            soak(work, agents, 10_000, 60.0, 5.0)
        else:
            compare(work, agents, args.devices, 7.0 if args.quick else 20.0)
    finally:
        for agent in agents:
            agent.stop()


if __name__ == "__main__":
    main()
