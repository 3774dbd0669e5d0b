"""Which devices each rule holds true for, right now: queries over the views' index; and,
for the rules about hookflash's own remote sinks, which sinks.

Each device function returns {device_id: Firing} for devices of active accounts only; the
sink functions {"sink:<name>": Firing} with no account. The MOS
rule is incremental: it re-reads the last K calls only of devices with new call-quality
records since the previous round (and of those firing), so a round stays cheap at
100,000 devices. Every rule reads only what a device stored under its current account (the
views' index is keyed by owner): a device moved to another customer starts afresh.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from collector.config.alerts import (
    FirmwareRegressedRule,
    MosBelowRule,
    OfflineRule,
    RegistrationLostRule,
    SinkDownRule,
)
from collector.core.interfaces import SinkHealth
from collector.views.db import ACTIVE_DEVICES, ViewsDb, at

SINK = "sink:"  # the subject of an alert about a sink, where a device's id stands otherwise (a MAC)


def still_active(db: ViewsDb, device_ids: set[str]) -> set[str]:
    """Those of the devices that are provisioned in an active account, per the registry now
    (the gate learns of a change a moment later; the registry is where it happens first)."""
    if not device_ids:
        return set()
    rows = db.rows(
        f"WITH {ACTIVE_DEVICES} SELECT id FROM active WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(sorted(device_ids)),),
    )
    return {r[0] for r in rows}


@dataclass(frozen=True)
class Firing:
    account_id: str
    model: str
    detail: dict[str, Any]


def offline(db: ViewsDb, rule: OfflineRule, now: float) -> dict[str, Firing]:
    rows = db.rows(
        f"""WITH {ACTIVE_DEVICES}
        SELECT a.id, a.account_id, a.model, s.last_seen FROM active a
        JOIN device_state s ON s.device_id = a.id AND s.account_id = a.account_id
        WHERE s.last_seen < :cut""",
        {"cut": now - rule.minutes * 60},
    )
    return {
        r["id"]: Firing(
            r["account_id"],
            r["model"],
            {"last_seen": at(r["last_seen"]), "silent_for_s": round(now - r["last_seen"], 1)},
        )
        for r in rows
    }


def registration_lost(db: ViewsDb, rule: RegistrationLostRule) -> dict[str, Firing]:
    rows = db.rows(
        f"""WITH {ACTIVE_DEVICES}
        SELECT a.id, a.account_id, a.model, l.fields, l.observed_at FROM latest l CROSS JOIN device_state s
            ON s.device_id = l.device_id AND s.account_id = l.account_id AND s.reg_state = 'unregistered'
        JOIN active a ON a.id = l.device_id AND a.account_id = l.account_id
        WHERE l.slot = 'registration'"""
    )
    return {
        r["id"]: Firing(
            r["account_id"],
            r["model"],
            {
                "lines": {k: v for k, v in json.loads(r["fields"]).items() if k.endswith("state")},
                "reported_at": at(r["observed_at"]),
            },
        )
        for r in rows
    }


def firmware_regressed(db: ViewsDb, rule: FirmwareRegressedRule) -> dict[str, Firing]:
    rows = db.rows(
        f"""WITH {ACTIVE_DEVICES}
        SELECT a.id, a.account_id, a.model, l.fields, l.observed_at FROM active a
        JOIN latest l
            ON l.slot = 'change.firmware_changed' AND l.device_id = a.id AND l.account_id = a.account_id
        JOIN device_state s ON s.device_id = a.id AND s.account_id = a.account_id
        WHERE l.fields->>'direction' = 'downgrade' AND s.version = l.fields->>'version'"""
    )
    out = {}
    for r in rows:
        change = json.loads(r["fields"])
        out[r["id"]] = Firing(
            r["account_id"],
            r["model"],
            {
                "version": change.get("version"),
                "previous_version": change.get("previous_version"),
                "changed_at": at(r["observed_at"]),
            },
        )
    return out


def _sink_firing(h: SinkHealth) -> Firing:
    return Firing(
        "",
        "",
        {
            "sink": h.name,
            "status": h.status,
            "reason": h.reason,
            "down_for_s": round(h.down_for_s or 0.0, 1),
            "spooled_batches": h.spool_batches,
            "spooled_bytes": h.spool_bytes,
        },
    )


def sink_unauthorized(health: Sequence[SinkHealth]) -> dict[str, Firing]:
    return {SINK + h.name: _sink_firing(h) for h in health if h.status in (401, 403, 404)}


def sink_down(health: Sequence[SinkHealth], rule: SinkDownRule) -> dict[str, Firing]:
    return {
        SINK + h.name: _sink_firing(h)
        for h in health
        if h.down_for_s is not None and h.down_for_s >= rule.minutes * 60
    }


@dataclass
class MosTracker:
    """Remembers, per MOS rule, the newest call-quality row it has read and the devices it
    judged poor, so each round only looks at devices with new calls."""

    rule: MosBelowRule
    cursor: int = 0
    poor: dict[str, Firing] = field(default_factory=dict)

    def evaluate(self, db: ViewsDb) -> dict[str, Firing]:
        self._keep_current_owners(db)
        changed = db.rows(
            f"""WITH {ACTIVE_DEVICES}
            SELECT a.id, a.account_id, a.model, l.row_id FROM active a
            JOIN latest l ON l.slot = 'call_quality' AND l.device_id = a.id AND l.account_id = a.account_id
            WHERE l.row_id > :cursor""",
            {"cursor": self.cursor},
        )
        if changed:
            self.cursor = max(r["row_id"] for r in changed)
            owners = {r["id"]: (r["account_id"], r["model"]) for r in changed}
            # By the device index; the owner (`+`: not an index) filters.
            rows = db.rows(
                """SELECT c.value->>0 AS id, (
                    SELECT json_group_array(mos) FROM (
                        SELECT CAST(fields->>'mos' AS REAL) AS mos FROM telemetry
                        WHERE device_id = c.value->>0 AND kind = 'call_quality'
                          AND +account_id = c.value->>1
                          AND coalesce(fields->>'direction', 'local') != 'remote'
                        ORDER BY observed_at DESC, id DESC LIMIT :calls)) AS last
                FROM json_each(:devices) c""",
                {
                    "devices": json.dumps(sorted([d, o[0]] for d, o in owners.items())),
                    "calls": self.rule.calls,
                },
            )
            for r in rows:
                values = [v for v in json.loads(r["last"]) if isinstance(v, int | float)]
                mean = sum(values) / len(values) if values else None
                if mean is not None and len(values) == self.rule.calls and mean < self.rule.threshold:
                    account, model = owners[r["id"]]
                    self.poor[r["id"]] = Firing(
                        account,
                        model,
                        {"mean_mos": round(mean, 3), "calls": len(values), "threshold": self.rule.threshold},
                    )
                else:
                    self.poor.pop(r["id"], None)
        return dict(self.poor)

    def forget(self, device_ids: set[str]) -> None:
        for device_id in device_ids:
            self.poor.pop(device_id, None)

    def _keep_current_owners(self, db: ViewsDb) -> None:
        """A device judged poor under one account and since moved to another (or whose
        account stopped) is no longer poor: its new owner's calls have not been judged."""
        if not self.poor:
            return
        owners = {
            r["id"]: r["account_id"]
            for r in db.rows(
                f"WITH {ACTIVE_DEVICES} SELECT a.id, a.account_id FROM active a"
                " JOIN json_each(:ids) j ON j.value = a.id",
                {"ids": json.dumps(sorted(self.poor))},
            )
        }
        self.forget({d for d, firing in self.poor.items() if owners.get(d) != firing.account_id})
