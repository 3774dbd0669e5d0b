"""Prometheus' snmp_exporter as the baseline of bench/snmp_poll.py: its module config for the
bench's OIDs, the exporter process, a checked scrape and a wrk load spread over the agents.

Needs the Debian packages `prometheus-snmp-exporter` (0.21: modules at the top level of
snmp.yml, each with its own `version` and `auth`; the `auths:` section came later) and `wrk`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from services import HOST, _Service, answers_ok

EXPORTER = "/usr/bin/prometheus-snmp-exporter"
WRK = "/usr/bin/wrk"
PACKAGES = {EXPORTER: "prometheus-snmp-exporter", WRK: "wrk"}
MODULE = "hookflash_bench"
WRK_CONNECTIONS = 50

# The exporter's metric type for each MIB syntax the profiles use, as its generator would
# pick it. OBJECT IDENTIFIER has no type of its own there: DisplayString shows it as text.
EXPORTER_TYPES = {
    "INTEGER": "gauge", "Integer32": "gauge", "Unsigned32": "gauge", "Gauge32": "gauge",
    "TruthValue": "gauge", "TimeTicks": "gauge", "Counter32": "counter", "Counter64": "counter",
    "OCTET STRING": "DisplayString", "DisplayString": "DisplayString",
    "SnmpAdminString": "DisplayString", "OBJECT IDENTIFIER": "DisplayString",
    "PhysAddress": "PhysAddress48", "MacAddress": "PhysAddress48", "IpAddress": "InetAddressIPv4",
}  # fmt: skip
LABELLED = frozenset({"DisplayString", "PhysAddress48", "InetAddressIPv4"})  # value 1, text in a label
_SAMPLE = re.compile(r"(?P<name>[A-Za-z_:][\w:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h),")
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def missing_packages() -> list[str]:
    return [package for path, package in PACKAGES.items() if not os.access(path, os.X_OK)]


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def exporter_version() -> str:
    out = subprocess.run([EXPORTER, "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"version (\S+)", out.stdout + out.stderr)
    return found.group(1) if found else "unknown"


@dataclass(frozen=True)
class Metric:
    """One scalar OID as the exporter's module asks for and names it."""

    name: str
    oid: str
    syntax: str

    @property
    def type(self) -> str:
        return EXPORTER_TYPES[self.syntax]


def module_config(metrics: Sequence[Metric], community: str, timeout_s: float) -> str:
    """snmp.yml (0.21 format) with one module: a single GET of every OID, no retries."""
    lines = [
        f"{MODULE}:",
        "  version: 2",
        "  retries: 0",
        f"  timeout: {timeout_s:g}s",
        "  auth:",
        f"    community: {json.dumps(community)}",
        "  get:",
        *(f"  - {m.oid}" for m in metrics),
        "  metrics:",
    ]
    for m in metrics:
        lines += [
            f"  - name: {m.name}",
            f"    oid: {m.oid}",
            f"    type: {m.type}",
            f"    help: {json.dumps(f'{m.syntax} {m.oid}')}",
        ]
    return "\n".join(lines) + "\n"


def parse_samples(text: str) -> dict[str, tuple[dict[str, str], float]]:
    """Prometheus text exposition -> {metric name: (labels, value)}; one sample per name."""
    samples: dict[str, tuple[dict[str, str], float]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and (found := _SAMPLE.fullmatch(line)):
            labels = {k: v.replace('\\"', '"') for k, v in _LABEL.findall(found["labels"] or "")}
            samples[found["name"]] = (labels, float(found["value"]))
    return samples


def expected_sample(metric: Metric, value: str | int) -> tuple[dict[str, str], float]:
    if metric.type in LABELLED:
        return {metric.name: str(value)}, 1.0
    return {}, float(value)


class SnmpExporter(_Service):
    """prometheus-snmp-exporter on tcp 127.0.0.1:<port>, on one OS thread of Go code
    (GOMAXPROCS=1), serving `snmp.yml` written in its work dir."""

    name = "snmp-exporter"

    def __init__(self, workdir: Path, config: str) -> None:
        super().__init__(workdir, None, "tcp")
        self.config_path = self.workdir / "snmp.yml"
        self.config = config

    def start(self, timeout: float = 10.0) -> Self:
        cmd = [EXPORTER, f"--config.file={self.config_path}", f"--web.listen-address={HOST}:{self.port}"]
        self._launch(self.config, cmd, self._ready, timeout, {**os.environ, "GOMAXPROCS": "1"})
        return self

    def _ready(self) -> bool:
        return answers_ok(f"http://{HOST}:{self.port}/")

    def path(self, agent_port: int) -> str:
        return f"/snmp?module={MODULE}&target={HOST}:{agent_port}"

    def scrape(self, agent_port: int) -> str:
        with urllib.request.urlopen(f"http://{HOST}:{self.port}{self.path(agent_port)}", timeout=10) as r:
            return str(r.read().decode())

    def cpu_seconds(self) -> float:
        assert self.pid is not None, "not started"
        return proc_cpu_seconds(self.pid)

    def errors_logged(self) -> list[str]:
        """Failed scrapes it logged, less those wrk hung up on when its run ended (their
        context is canceled: "operation was canceled"); those cost it a little CPU, no scrape."""
        text = self.output_path.read_text(errors="replace") if self.output_path.exists() else ""
        return [
            line
            for line in text.splitlines()
            if ("level=error" in line or "Error scraping" in line) and "operation was canceled" not in line
        ]


def check_scrape(
    text: str, metrics: Sequence[Metric], agent_values: Mapping[str, str | int | None], tick_slack: int
) -> list[str]:
    """Mismatches between one scrape and what the agent serves (None: noSuchObject, so the
    metric must be absent). TimeTicks may have moved on by up to `tick_slack`. The scrape
    must have been one GET, as hookflash's poll is."""
    samples, problems = parse_samples(text), []
    if (sent := samples.get("snmp_scrape_packets_sent")) != ({}, 1.0):
        problems.append(f"snmp_scrape_packets_sent {sent}: not one GET for the scrape")
    for m in metrics:
        value, got = agent_values[m.oid], samples.get(m.name)
        if value is None:
            if got is not None:
                problems.append(f"{m.name} ({m.oid}): agent has no such object, scrape has {got}")
            continue
        want = expected_sample(m, value)
        if got is None:
            problems.append(f"{m.name} ({m.oid}): missing from the scrape (agent: {value!r})")
        elif m.syntax == "TimeTicks" and not (not got[0] and 0 <= got[1] - want[1] <= tick_slack):
            problems.append(f"{m.name} ({m.oid}): scrape {got}, agent {want} a moment before")
        elif m.syntax != "TimeTicks" and got != want:
            problems.append(f"{m.name} ({m.oid}): scrape {got}, agent {want}")
    return problems


@dataclass(frozen=True)
class WrkResult:
    requests: int  # responses received, any status
    seconds: float
    failed: int  # non-2xx responses and socket errors (timeouts included)


def lua_rotation(paths: Sequence[str]) -> str:
    """wrk script: each request goes to the next path, so the load is spread over the agents."""
    listed = ", ".join(json.dumps(p) for p in paths)
    return (
        f"local paths = {{{listed}}}\nlocal i = 0\n"
        'request = function()\n  i = i % #paths + 1\n  return wrk.format("GET", paths[i])\nend\n'
    )


def run_wrk(base_url: str, script: Path, seconds: float) -> WrkResult:
    load = [f"-c{WRK_CONNECTIONS}", "-t1", f"-d{seconds:g}s", "--timeout", "5s"]
    cmd = [WRK, *load, "-s", str(script), base_url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    found = _REQUESTS.search(out)
    if found is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    elapsed = float(found[2]) * _UNIT[found[3]]
    errors = sum(map(int, m.groups())) if (m := _ERRORS.search(out)) else 0
    non_2xx = int(m[1]) if (m := _NON_2XX.search(out)) else 0
    return WrkResult(int(found[1]), elapsed, errors + non_2xx)
