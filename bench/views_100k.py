"""Fleet views at 100,000 devices: how long the summary, the list pages, the firmware
distribution and a rollout report take on a synthetic store, and what keeping the
`latest` index (triggers) costs the write path.

The store holds, per device: two firmware reports (half of the HT812s upgrade, with the
change record the tagger would write), registration, signal and performance, and
`--rounds` call-quality records. Usage: python bench/views_100k.py [--devices N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from collector.core.records import Kind, TelemetryRecord  # noqa: E402
from collector.retention import load_policy  # noqa: E402
from collector.sinks.sqlite import EmbeddedStore  # noqa: E402
from collector.views.db import ViewsDb  # noqa: E402
from collector.views.fleet import FleetViews  # noqa: E402
from collector.views.rollout import rollout_status  # noqa: E402
from provisioning.models import Device, Transport  # noqa: E402
from provisioning.registry import Registry  # noqa: E402

POLICY = load_policy()
MODELS = [("HT812", 0.5), ("HT802", 0.2), ("T54W", 0.2), ("T46U", 0.1)]
OLD, NEW = "1.0.43.11", "1.0.47.4"


def devices(n: int) -> list[Device]:
    out, i = [], 0
    for model, share in MODELS:
        for _ in range(int(n * share)):
            out.append(
                Device(
                    id=f"000b82{i:06x}",
                    account_id=f"acct-{i // 4}",
                    vendor="Grandstream",
                    model=model,
                    transport=Transport.SNMP,
                    address="127.0.0.1:161",
                )
            )
            i += 1
    return out


def rec(d: Device, kind: Kind, fields: dict[str, Any], at: datetime, firmware: str) -> TelemetryRecord:
    return TelemetryRecord(
        device_id=d.id,
        account_id=d.account_id,
        kind=kind,
        observed_at=at,
        fields=fields,
        retention_class=POLICY.kinds[kind],
        source="snmp",
        model=d.model,
        firmware=firmware,
    )


def records(fleet: list[Device], rounds: int, now: datetime) -> list[TelemetryRecord]:
    out = []
    for n, d in enumerate(fleet):
        t0 = now - timedelta(hours=3) - timedelta(seconds=n % 600)
        upgrades = d.model == "HT812" and n % 2 == 0
        out.append(rec(d, Kind.FIRMWARE, {"version": OLD}, t0, OLD))
        fw = OLD
        for r in range(rounds):
            at = t0 + timedelta(minutes=10 * (r + 1))
            if upgrades and r == rounds // 2:
                fw = NEW
                out.append(rec(d, Kind.FIRMWARE, {"version": NEW}, at, NEW))
                out.append(
                    rec(
                        d,
                        Kind.CHANGE,
                        {
                            "event": "firmware_changed",
                            "version": NEW,
                            "previous_version": OLD,
                            "direction": "upgrade",
                        },
                        at,
                        NEW,
                    )
                )
            out.append(
                rec(
                    d,
                    Kind.CALL_QUALITY,
                    {
                        "mos": 4.0 - (n % 20) / 10,
                        "jitter_ms": n % 40,
                        "loss_pct": (n % 7) / 10,
                        "codec": "G722",
                    },
                    at,
                    fw,
                )
            )
        last = now - timedelta(seconds=60 if n % 50 else 7200)  # 2 % offline
        out.append(
            rec(
                d,
                Kind.REGISTRATION,
                {"line1_state": "registered" if n % 30 else "failed", "line2_state": "unregistered"},
                last,
                fw,
            )
        )
        out.append(rec(d, Kind.SIGNAL, {"wifi_rssi_dbm": -50 - n % 30}, last, fw))
        out.append(rec(d, Kind.PERFORMANCE, {"uptime_s": 3600 + n}, last, fw))
    return out


def timed(fn: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def write_rate(path: Path, batch: list[TelemetryRecord], triggers: bool) -> float:
    store = EmbeddedStore.open(path)
    if not triggers:
        store.db.connection.executescript("DROP TRIGGER latest_on_insert; DROP TRIGGER latest_on_delete;")
    started = time.perf_counter()
    for i in range(0, len(batch), 5000):
        store.sink.write(batch[i : i + 5000])
    rate = len(batch) / (time.perf_counter() - started)
    store.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hookflash-views-"))
    now = datetime.now(UTC)
    fleet = devices(args.devices)
    started = time.perf_counter()
    registry = Registry(work / "registry.db", clock=lambda: now - timedelta(days=1))
    registry.import_devices(fleet, source="bench")
    print(f"registry: {len(fleet):,} devices in {time.perf_counter() - started:.1f}s")
    batch = records(fleet, args.rounds, now)
    sample = batch[:300_000]
    without = write_rate(work / "plain.db", sample, triggers=False)
    with_latest = write_rate(work / "latest.db", sample, triggers=True)
    print(
        f"store writes, first {len(sample):,} records in 5,000-record batches: "
        f"{without:,.0f}/s without the latest triggers, {with_latest:,.0f}/s with them "
        f"({with_latest / without:.2f}x)"
    )
    store = EmbeddedStore.open(work / "telemetry.db")
    started = time.perf_counter()
    for i in range(0, len(batch), 5000):
        store.sink.write(batch[i : i + 5000])
    print(f"store: {len(batch):,} records in {time.perf_counter() - started:.1f}s")
    views = FleetViews(ViewsDb(work / "telemetry.db", work / "registry.db"))
    results = []
    for name, fn in (
        ("summary", views.summary),
        ("offline page (50)", lambda: views.offline(50, 0)),
        ("poor-quality page (50)", lambda: views.poor_quality(50, 0)),
        ("unregistered page (50)", lambda: views.unregistered(50, 0)),
        ("firmware distribution", views.firmware),
        ("device detail", lambda: views.device(fleet[7].id)),
        ("rollout HT812 (50% of devices)", lambda: rollout_status(views.db, "HT812", NEW).report),
    ):
        seconds, _ = timed(fn, 3 if name.startswith("rollout") else 5)
        results.append((name, seconds))
        print(f"{name:34s} {seconds * 1000:8.1f} ms")
    summary = views.summary()
    print(
        f"summary: {summary.devices:,} devices, {summary.online:,} online, {summary.offline:,} offline, "
        f"{summary.unregistered:,} unregistered, {summary.poor_quality:,} poor"
    )
    print("RESULT " + ", ".join(f"{n}={s * 1000:.0f}ms" for n, s in results))


if __name__ == "__main__":
    main()
