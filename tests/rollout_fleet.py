"""A scripted fleet for rollout tests: 13 HT812s of active accounts meet a firmware rollout
to 1.0.47.4 (the rollout begins at R, when U1 first reports it), plus devices that must
stay out of the report (another model, an inactive account).

| device | story | state |
| --- | --- | --- |
| U1..U4 | upgrade at R, R+1h, R+2h, R+3h (rebooting once as they do) | on_target |
| RG1 | upgrades at R+1h, goes back to 1.0.43.11 at R+5h | regressed |
| RB1 | upgrades at R+2h, then reboots three times | regressed |
| F1 | seen after R, reboots at R+2h, comes back on 1.0.43.11 | failed |
| F2 | still on 1.0.43.11 at R+25h (grace 24 h) | failed |
| P1 | seen at R+1h on 1.0.43.11 | pending |
| S1, S2 | last seen before R | straggler |
| S3 | never seen | straggler |
| A1 | on 1.0.48.0 (newer than the target) all along | ahead |
| X1 (HT802) | reports 1.0.47.4 at R-5h: another model | not in scope |
| I1 | HT812 reporting 1.0.47.4 at R-10h; its account is then suspended | not in scope |

Call quality (MOS / loss % / jitter ms) and registration, written with chosen values:
- every upgraded device (U1..U4, RG1, RB1): two samples in the 24 h before its upgrade,
  4.2/0.5/10 and 4.4/0.7/14, both registered; two after it on the target, 3.6/1.5/30 and
  3.8/2.5/40, one registered and one not. RG1 also reports 4.4/0.5/10 and registered
  after going back (stamped 1.0.43.11: in no cohort).
- F1, F2, P1: one sample at R+1h, 4.0/1.0/20, registered. A1 the same (ahead: in no cohort).
- S1, S2: one sample at B+1h (before R: in no cohort).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from collector.core.interfaces import Verdict
from collector.core.records import FieldValue, Kind, Observation
from collector.gate import Gate
from collector.retention import load_policy
from collector.sinks.sqlite import EmbeddedStore
from factories import intake_for
from provisioning.models import AccountStatus, Device, Transport
from provisioning.registry import Registry

MODEL, OLD, TARGET, NEWER = "HT812", "1.0.43.11", "1.0.47.4", "1.0.48.0"
NAMES = ["U1", "U2", "U3", "U4", "RG1", "RB1", "F1", "F2", "P1", "S1", "S2", "S3", "A1"]
INACTIVE_ACCOUNT = "acct-gone"


def _device(n: int, name: str, model: str = MODEL, account: str | None = None) -> Device:
    return Device(
        id=f"000b82{n:06x}",
        account_id=account or f"acct-{n % 4}",
        vendor="Grandstream",
        model=model,
        transport=Transport.SNMP,
        address="127.0.0.1:1",
    )


DEVICES: dict[str, Device] = {name: _device(0x100 + i, name) for i, name in enumerate(NAMES)}
DEVICES["X1"] = _device(0x200, "X1", model="HT802")
DEVICES["I1"] = _device(0x300, "I1", account=INACTIVE_ACCOUNT)
ID = {name: d.id for name, d in DEVICES.items()}


@dataclass(frozen=True)
class Times:
    base: datetime  # B: everyone's first report is at B+1h

    @property
    def rollout(self) -> datetime:  # R
        return self.base + timedelta(hours=30)

    def r(self, hours: float) -> datetime:
        return self.rollout + timedelta(hours=hours)


UPGRADES = {"U1": 0, "U2": 1, "U3": 2, "U4": 3, "RG1": 1, "RB1": 2}  # hours after R


def observations(t: Times) -> list[Observation]:
    out: list[Observation] = []

    def obs(name: str, at: datetime, kind: Kind, **fields: FieldValue) -> None:
        out.append(Observation(device_id=ID[name], kind=kind, observed_at=at, fields=fields, source="snmp"))

    def quality(name: str, at: datetime, mos: float, loss: float, jitter: int, registered: bool) -> None:
        obs(name, at, Kind.CALL_QUALITY, mos=mos, loss_pct=loss, jitter_ms=jitter, codec="G722")
        obs(
            name,
            at,
            Kind.REGISTRATION,
            line1_state="registered" if registered else "failed",
            line2_state="unregistered",
        )

    first = t.base + timedelta(hours=1)
    for name in NAMES:
        if name == "S3":
            continue
        obs(name, first, Kind.FIRMWARE, version=NEWER if name == "A1" else OLD)
        obs(name, first, Kind.PERFORMANCE, uptime_s=100_000)
    for name in ("S1", "S2"):
        quality(name, first, 4.0, 1.0, 20, True)
    for name, hours in UPGRADES.items():
        up = t.r(hours)
        quality(name, up - timedelta(hours=3), 4.2, 0.5, 10, True)
        quality(name, up - timedelta(hours=2), 4.4, 0.7, 14, True)
        obs(name, up, Kind.FIRMWARE, version=TARGET)
        obs(name, up, Kind.PERFORMANCE, uptime_s=60)  # the upgrade's own reboot
        quality(name, up + timedelta(minutes=30), 3.6, 1.5, 30, True)
        quality(name, up + timedelta(minutes=40), 3.8, 2.5, 40, False)
    obs("RG1", t.r(5), Kind.FIRMWARE, version=OLD)
    quality("RG1", t.r(5.5), 4.4, 0.5, 10, True)
    for n, hours in enumerate((3, 4, 5)):  # RB1 reboots three times after its upgrade
        obs("RB1", t.r(hours), Kind.PERFORMANCE, uptime_s=50 - 10 * n)
    for name in ("F1", "F2", "P1", "A1"):
        quality(name, t.r(1), 4.0, 1.0, 20, True)
    obs("F1", t.r(2), Kind.PERFORMANCE, uptime_s=30)  # a reboot...
    obs("F1", t.r(2), Kind.FIRMWARE, version=OLD)  # ...that did not upgrade it
    obs("F2", t.r(25), Kind.FIRMWARE, version=OLD)
    obs("P1", t.r(1), Kind.FIRMWARE, version=OLD)
    obs("X1", t.r(-5), Kind.FIRMWARE, version=TARGET)
    obs("I1", t.r(-10), Kind.FIRMWARE, version=TARGET)
    return sorted(out, key=lambda o: o.observed_at)


def write_fleet(data_dir: Path, t: Times) -> None:
    """Provision the devices and write their observations through the real gate, tagger
    (which derives the firmware-change and reboot records) and SQLite store; then suspend
    I1's account."""
    registry = Registry(data_dir / "registry.db", clock=lambda: t.base)
    registry.import_devices(DEVICES.values(), source="rollout fleet")
    store = EmbeddedStore.open(data_dir / "telemetry.db")
    intake, pipeline = intake_for(Gate(registry), store, load_policy(), flush_interval=0.01)

    async def run() -> None:
        pipeline.start()
        for observation in observations(t):
            assert intake.derived(observation) is Verdict.QUEUED, observation
        await pipeline.stop()

    asyncio.run(run())
    store.close()
    Registry(data_dir / "registry.db").set_status(INACTIVE_ACCOUNT, AccountStatus.INACTIVE, "test")
    registry.close()


EXPECTED_COUNTS = {"on_target": 4, "ahead": 1, "pending": 1, "failed": 2, "regressed": 2, "straggler": 3}
EXPECTED_COHORTS = {
    "before": {
        "devices": 6,
        "calls": 12,
        "mos": 4.3,
        "loss_pct": 0.6,
        "jitter_ms": 12.0,
        "registration_samples": 12,
        "registration_rate": 1.0,
    },
    "after": {
        "devices": 6,
        "calls": 12,
        "mos": 3.7,
        "loss_pct": 2.0,
        "jitter_ms": 35.0,
        "registration_samples": 12,
        "registration_rate": 0.5,
    },
    "not_upgraded": {
        "devices": 3,
        "calls": 3,
        "mos": 4.0,
        "loss_pct": 1.0,
        "jitter_ms": 20.0,
        "registration_samples": 3,
        "registration_rate": 1.0,
    },
}
EXPECTED_DELTA = {"mos": -0.6, "loss_pct": 1.4, "jitter_ms": 23.0, "registration_rate": -0.5}
EXPECTED_STATES = {
    **{n: "on_target" for n in ("U1", "U2", "U3", "U4")},
    "RG1": "regressed",
    "RB1": "regressed",
    "F1": "failed",
    "F2": "failed",
    "P1": "pending",
    "S1": "straggler",
    "S2": "straggler",
    "S3": "straggler",
    "A1": "ahead",
}


def check_report(report: dict[str, object], t: Times) -> None:
    """Every number of the report on this fleet (JSON form: from the API or the CLI)."""
    name_of = {device_id: name for name, device_id in ID.items()}
    assert report["model"] == MODEL and report["target"] == TARGET
    assert (
        datetime.fromisoformat(str(report["began"])) == t.rollout
    )  # U1's upgrade: the first report of the target
    assert report["began_from"] == "first report of target"
    assert report["devices"] == 13  # not X1 (another model), not I1 (inactive account)
    assert report["counts"] == EXPECTED_COUNTS
    assert report["progress_pct"] == 38.46  # (4 on target + 1 ahead) / 13
    assert report["cohorts"] == EXPECTED_COHORTS
    assert report["delta"] == EXPECTED_DELTA
    listed = report["listed"]
    assert isinstance(listed, dict)
    assert {name_of[d["device_id"]]: d["reason"] for d in listed["regressed"]} == {
        "RG1": f"went back to 1.0.43.11 after {TARGET}",
        "RB1": "rebooted 3 times after upgrading",
    }
    assert {name_of[d["device_id"]]: d["reason"] for d in listed["failed"]} == {
        "F1": "rebooted after the rollout began, still on 1.0.43.11",
        "F2": "still on 1.0.43.11 24 h after the rollout began",
    }
    assert {name_of[d["device_id"]]: d["reason"] for d in listed["straggler"]} == {
        "S1": "not seen since the rollout began",
        "S2": "not seen since the rollout began",
        "S3": "never seen",
    }
