"""Firmware rollout status: where each device of a model stands against a target version,
and how call quality and registration compare before and after upgrading.

Definitions (also in the README):

- **Scope**: the provisioned devices of the model whose account is active.
- **Version history** of a device: its first `firmware` record, then its
  `firmware_changed` change records (collector.tag.changes). A device's **upgrade time**
  is the first time it reported the target version.
- **Rollout began**: `since` when given; otherwise the first time any device in scope
  reported the target version. `None` when neither exists (nothing has upgraded yet).
- **States** (each device has exactly one, in this order of precedence):
  - `regressed`: it reported the target, and then either went back to an older version,
    or rebooted at least `reboot_limit` times after its upgrade time;
  - `on_target`: it reports the target version now;
  - `ahead`: it reports a newer version than the target;
  - `straggler`: not on target, and nothing stored from it since the rollout began;
  - `failed`: never on target, seen since the rollout began, and either rebooted since then
    but came back on another version (an upgrade that did not take), moved to a version
    other than the target, or was still not on target `grace_s` after the rollout began;
  - `pending`: never on target, seen since the rollout began, none of the above yet.
- **Cohorts** (samples are call-quality and registration records):
  - `before`: upgraded devices, in the `window_s` before each one's upgrade time;
  - `after`: upgraded devices, from the upgrade time to `window_s` after it, only records
    stamped with the target firmware (a regressed device's later records do not count);
  - `not_upgraded`: devices never on target and not ahead of it, since the rollout began
    (the control group).
  Means are per sample, rounded to 3 decimals; the registration rate is the share of
  registration records with a registered line, rounded to 4.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from collector.core.versions import version_key
from collector.sinks.sqlite.latest import registration_state
from collector.views.db import ACTIVE_DEVICES, ViewsDb, iso

# A device's call quality is what it heard itself: a SIP report's remote direction (what
# its peer heard) is not the device's.
OWN = "coalesce(t.fields->>'direction', 'local') != 'remote'"

State = Literal["regressed", "on_target", "ahead", "straggler", "failed", "pending"]
STATES: tuple[State, ...] = ("on_target", "ahead", "pending", "failed", "regressed", "straggler")
LISTED: tuple[State, ...] = ("regressed", "failed", "straggler")


class UnknownModel(LookupError):
    def __init__(self, model: str, known: list[str]) -> None:
        super().__init__(
            f"no device of model {model!r} in an active account; models: {', '.join(known) or 'none'}"
        )


class RolloutDevice(BaseModel):
    device_id: str
    account_id: str
    state: State
    version: str | None = Field(description="the version it reports now")
    upgraded_at: datetime | None = Field(description="when it first reported the target")
    last_seen: datetime | None
    reboots_after_upgrade: int
    reason: str


class Cohort(BaseModel):
    devices: int = Field(description="devices with call-quality samples in the cohort")
    calls: int = Field(description="call-quality samples")
    mos: float | None
    loss_pct: float | None
    jitter_ms: float | None
    registration_samples: int
    registration_rate: float | None


class RolloutReport(BaseModel):
    model: str
    target: str
    began: datetime | None
    began_from: Literal["since", "first report of target"] | None
    generated_at: datetime
    grace_s: float
    window_s: float
    reboot_limit: int
    devices: int
    counts: dict[State, int]
    progress_pct: float = Field(description="on_target + ahead, as a share of all devices")
    cohorts: dict[Literal["before", "after", "not_upgraded"], Cohort]
    delta: dict[str, float | None] = Field(description="after minus before")
    listed: dict[State, list[RolloutDevice]] = Field(
        description="regressed, failed and straggler devices (up to list_limit each)"
    )


@dataclass
class _Device:
    id: str
    account_id: str
    version: str | None
    last_seen: float | None
    versions: list[tuple[float, str]] = field(default_factory=list)
    reboots: list[float] = field(default_factory=list)

    def upgraded_at(self, target: str) -> float | None:
        """When it first reported `target` (versions are in time order)."""
        return next((at for at, v in self.versions if v == target), None)


def _older(version: str | None, target: str) -> bool:
    a, b = version_key(version or ""), version_key(target)
    return a is not None and b is not None and a < b


def _newer(version: str | None, target: str) -> bool:
    a, b = version_key(version or ""), version_key(target)
    return a is not None and b is not None and a > b


def _classify(
    d: _Device, target: str, began: float | None, grace_s: float, reboot_limit: int
) -> tuple[State, str, int]:
    """(state, reason, reboots after upgrade) of one device."""
    up = d.upgraded_at(target)
    if up is not None:
        reboots = sum(1 for at in d.reboots if at > up)
        if d.version != target and _older(d.version, target):
            return "regressed", f"went back to {d.version} after {target}", reboots
        if reboots >= reboot_limit:
            return "regressed", f"rebooted {reboots} times after upgrading", reboots
        if d.version == target:
            return "on_target", "", reboots
        return "ahead", f"moved on to {d.version}", reboots
    if d.version is not None and _newer(d.version, target):
        return "ahead", f"already on {d.version}", 0
    if began is None:
        return ("straggler", "never seen", 0) if d.last_seen is None else ("pending", "", 0)
    if d.last_seen is None or d.last_seen < began:
        return "straggler", "never seen" if d.last_seen is None else "not seen since the rollout began", 0
    if any(at >= began for at in d.reboots):
        return "failed", f"rebooted after the rollout began, still on {d.version}", 0
    moved = [v for at, v in d.versions[1:] if at >= began and v != target]  # changes, not the first report
    if moved:
        return "failed", f"changed to {moved[-1]} instead of {target}", 0
    if d.last_seen >= began + grace_s:
        return "failed", f"still on {d.version} {grace_s / 3600:g} h after the rollout began", 0
    return "pending", "", 0


def _load(db: ViewsDb, model: str) -> list[_Device]:
    # CROSS JOIN keeps the scope as the outer loop: telemetry is only reached by its
    # (device_id, kind, observed_at) index, never scanned. Only what each device stored
    # under its current account counts (a device moved to another customer starts afresh):
    # `+account_id` keeps that a filter, so the planner never walks an account's history.
    scope = f"""{ACTIVE_DEVICES},
        scope AS MATERIALIZED (SELECT id, account_id FROM active WHERE model = :model)"""
    rows = db.rows(
        f"""WITH {scope}
        SELECT a.id, a.account_id, s.version, s.last_seen AS seen,
            (SELECT json_array(observed_at, fields->>'version') FROM telemetry
             WHERE device_id = a.id AND kind = 'firmware' AND +account_id = a.account_id
             ORDER BY observed_at, id LIMIT 1) AS first
        FROM scope a LEFT JOIN device_state s ON s.device_id = a.id AND s.account_id = a.account_id
        ORDER BY a.id""",
        {"model": model},
    )
    devices = {r["id"]: _Device(r["id"], r["account_id"], r["version"], r["seen"]) for r in rows}
    for r in rows:
        if r["first"] is not None:
            at, version = json.loads(r["first"])
            if version is not None:
                devices[r["id"]].versions.append((at, version))
    changes = db.rows(
        f"""WITH {scope}
        SELECT t.device_id, t.observed_at, t.fields->>'event' AS event, t.fields->>'version' AS version
        FROM scope a CROSS JOIN telemetry t
            ON t.device_id = a.id AND t.kind = 'change' AND +t.account_id = a.account_id
        WHERE t.fields->>'event' IN ('firmware_changed', 'reboot')
        ORDER BY t.observed_at, t.id""",
        {"model": model},
    )
    for c in changes:
        d = devices[c["device_id"]]
        if c["event"] == "reboot":
            d.reboots.append(c["observed_at"])
        elif c["version"] is not None:
            d.versions.append((c["observed_at"], c["version"]))
    for d in devices.values():
        d.versions.sort()
    return list(devices.values())


def _cohorts(
    db: ViewsDb, devices: list[_Device], target: str, began: float | None, window_s: float
) -> dict[str, Cohort]:
    # Per device: its account, its upgrade time, and whether it is in the control group (on
    # an older version).
    scope = json.dumps(
        [
            [d.id, d.account_id, up, up is None and not _newer(d.version, target)]
            for d in devices
            for up in [d.upgraded_at(target)]
        ]
    )
    samples = f"""scope(device_id, account_id, up, control) AS (
        SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(:scope)),
    samples AS (
        SELECT 'before' AS cohort, t.device_id, t.kind, t.fields FROM scope s CROSS JOIN telemetry t
            ON t.device_id = s.device_id AND t.kind IN ('call_quality', 'registration') AND {OWN}
           AND +t.account_id = s.account_id
           AND t.observed_at >= s.up - :window AND t.observed_at < s.up
        WHERE s.up IS NOT NULL
        UNION ALL
        SELECT 'after', t.device_id, t.kind, t.fields FROM scope s CROSS JOIN telemetry t
            ON t.device_id = s.device_id AND t.kind IN ('call_quality', 'registration') AND {OWN}
           AND +t.account_id = s.account_id
           AND t.observed_at >= s.up AND t.observed_at < s.up + :window
        WHERE s.up IS NOT NULL AND t.firmware = :target
        UNION ALL
        SELECT 'not_upgraded', t.device_id, t.kind, t.fields FROM scope s CROSS JOIN telemetry t
            ON t.device_id = s.device_id AND t.kind IN ('call_quality', 'registration') AND {OWN}
           AND +t.account_id = s.account_id
           AND t.observed_at >= :began
        WHERE s.control AND :began IS NOT NULL
    )"""
    args = {"scope": scope, "window": window_s, "target": target, "began": began}
    rows = db.rows(
        f"""WITH {samples}, marked AS (
            SELECT cohort, device_id, kind, fields,
                   CASE WHEN kind = 'registration' THEN {registration_state("fields")} END AS state
            FROM samples)
        SELECT cohort,
            count(DISTINCT CASE WHEN kind = 'call_quality' THEN device_id END) AS devices,
            sum(kind = 'call_quality') AS calls,
            avg(CASE WHEN kind = 'call_quality' THEN CAST(fields->>'mos' AS REAL) END) AS mos,
            avg(CASE WHEN kind = 'call_quality' THEN CAST(fields->>'loss_pct' AS REAL) END) AS loss,
            avg(CASE WHEN kind = 'call_quality' THEN CAST(fields->>'jitter_ms' AS REAL) END) AS jitter,
            sum(state IS NOT NULL) AS reg_samples,
            sum(state = 'registered') AS registered
        FROM marked GROUP BY cohort""",
        args,
    )
    found = {r["cohort"]: r for r in rows}

    def rounded(value: Any, digits: int) -> float | None:
        return None if value is None else round(float(value), digits)

    cohorts = {}
    for name in ("before", "after", "not_upgraded"):
        r = found.get(name)
        cohorts[name] = Cohort(
            devices=r["devices"] if r else 0,
            calls=r["calls"] if r else 0,
            mos=rounded(r["mos"], 3) if r else None,
            loss_pct=rounded(r["loss"], 3) if r else None,
            jitter_ms=rounded(r["jitter"], 3) if r else None,
            registration_samples=r["reg_samples"] if r else 0,
            registration_rate=rounded(r["registered"] / r["reg_samples"], 4)
            if r and r["reg_samples"]
            else None,
        )
    return cohorts


@dataclass
class Rollout:
    report: RolloutReport
    devices: list[RolloutDevice]

    def page(self, state: State | None, limit: int, offset: int) -> tuple[int, list[RolloutDevice]]:
        chosen = [d for d in self.devices if state is None or d.state == state]
        return len(chosen), chosen[offset : offset + limit]


def rollout_status(
    db: ViewsDb,
    model: str,
    target: str,
    *,
    since: datetime | None = None,
    grace_s: float = 86400,
    window_s: float = 86400,
    reboot_limit: int = 3,
    list_limit: int = 50,
    now: float | None = None,
) -> Rollout:
    if not target.strip():
        raise ValueError("target: a firmware version is required, e.g. 1.0.47.4")
    if since is not None and since.tzinfo is None:
        raise ValueError("since: give a timezone, e.g. 2026-11-27T08:00:00Z")
    devices = _load(db, model)
    if not devices:
        known = [r[0] for r in db.rows(f"WITH {ACTIVE_DEVICES} SELECT DISTINCT model FROM active ORDER BY 1")]
        raise UnknownModel(model, known)
    upgrades = [up for d in devices if (up := d.upgraded_at(target)) is not None]
    began = since.timestamp() if since is not None else min(upgrades, default=None)
    states = []
    for d in devices:
        state, reason, reboots = _classify(d, target, began, grace_s, reboot_limit)
        states.append(
            RolloutDevice(
                device_id=d.id,
                account_id=d.account_id,
                state=state,
                version=d.version,
                upgraded_at=iso(d.upgraded_at(target)),
                last_seen=iso(d.last_seen),
                reboots_after_upgrade=reboots,
                reason=reason,
            )
        )
    counts = Counter(s.state for s in states)
    cohorts = _cohorts(db, devices, target, began, window_s)
    before, after = cohorts["before"], cohorts["after"]

    def delta(name: str) -> float | None:
        a, b = getattr(after, name), getattr(before, name)
        return None if a is None or b is None else round(a - b, 4)

    report = RolloutReport(
        model=model,
        target=target,
        began=iso(began),
        began_from=None if began is None else "since" if since is not None else "first report of target",
        generated_at=iso(now if now is not None else time.time()),
        grace_s=grace_s,
        window_s=window_s,
        reboot_limit=reboot_limit,
        devices=len(devices),
        counts={s: counts.get(s, 0) for s in STATES},
        progress_pct=round(100 * (counts["on_target"] + counts["ahead"]) / len(devices), 2),
        cohorts=cohorts,
        delta={n: delta(n) for n in ("mos", "loss_pct", "jitter_ms", "registration_rate")},
        listed={s: [d for d in states if d.state == s][:list_limit] for s in LISTED},
    )
    return Rollout(report, states)
