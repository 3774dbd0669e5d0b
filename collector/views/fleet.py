"""Fleet views for the NOC: summary, offline / unregistered / poor-quality devices, firmware
distribution, one device's latest state and history.

Everything is aggregated and paginated in SQL over `latest` (one row per device, kind and
account, see collector.sinks.sqlite.latest), so a page costs O(devices), never O(history).
Only devices of active accounts are shown, and of each only what it stored under its
current account: a device moved to another customer shows nothing of the previous one's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from collector.config.views import ViewsConfig
from collector.core.versions import version_key
from collector.views.db import ACTIVE_DEVICES, ViewsDb, iso
from collector.views.models import (
    DeviceDetail,
    FleetSummary,
    History,
    HistoryRecord,
    LatestRecord,
    ModelFirmware,
    OfflineDevice,
    Page,
    QualityRow,
    UnregisteredDevice,
    VersionCount,
)

Clock = Callable[[], float]
MAX_PAGE = 500


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _page_args(limit: int, offset: int) -> dict[str, int]:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    return {"limit": limit, "offset": offset}


class FleetViews:
    def __init__(self, db: ViewsDb, config: ViewsConfig | None = None, clock: Clock = time.time) -> None:
        self.db = db
        self.config = config or ViewsConfig()
        self._clock = clock

    def _cut(self) -> float:
        return self._clock() - self.config.offline_after_s

    def summary(self) -> FleetSummary:
        row = self.db.one(
            f"""WITH {ACTIVE_DEVICES}
            SELECT count(*) AS devices,
                   count(DISTINCT a.model) AS models,
                   coalesce(sum(s.last_seen IS NULL), 0) AS never_seen,
                   coalesce(sum(s.last_seen < :cut), 0) AS offline,
                   coalesce(sum(s.last_seen >= :cut), 0) AS online,
                   coalesce(sum(s.reg_state = 'registered'), 0) AS registered,
                   coalesce(sum(s.reg_state = 'unregistered'), 0) AS unregistered,
                   coalesce(sum(s.mos < :mos), 0) AS poor_quality
            FROM active a LEFT JOIN device_state s ON s.device_id = a.id AND s.account_id = a.account_id""",
            {"cut": self._cut(), "mos": self.config.poor_mos},
        )
        accounts = {r[0]: r[1] for r in self.db.rows("SELECT status, count(*) FROM reg.accounts GROUP BY 1")}
        return FleetSummary(
            generated_at=iso(self._clock()),
            offline_after_s=self.config.offline_after_s,
            poor_mos=self.config.poor_mos,
            accounts={s: accounts.get(s, 0) for s in ("active", "inactive", "revoked")},
            **dict(row),
        )

    def _paged(
        self, base: str, order: str, args: dict[str, Any], limit: int, offset: int
    ) -> tuple[int, list[Any]]:
        """One page of `base` and the total over all pages, in one query (a second one only
        for an offset past the end)."""
        page = {**args, **_page_args(limit, offset)}
        rows = self.db.rows(
            f"SELECT *, count(*) OVER () AS total FROM ({base}) ORDER BY {order} LIMIT :limit OFFSET :offset",
            page,
        )
        if rows:
            return int(rows[0]["total"]), rows
        if offset == 0:
            return 0, []
        return int(self.db.one(f"SELECT count(*) FROM ({base})", args)[0]), []

    def offline(self, limit: int = 50, offset: int = 0) -> Page[OfflineDevice]:
        """Offline devices, most recently lost first, then those never seen."""
        now = self._clock()
        total, rows = self._paged(
            f"""WITH {ACTIVE_DEVICES}
            SELECT a.id, a.account_id, a.vendor, a.model, s.last_seen, r.fields->>'state' AS reach
            FROM active a LEFT JOIN device_state s ON s.device_id = a.id AND s.account_id = a.account_id
            LEFT JOIN latest r
                ON r.slot = 'reachability' AND r.device_id = a.id AND r.account_id = a.account_id
            WHERE s.last_seen IS NULL OR s.last_seen < :cut""",
            "last_seen IS NULL, last_seen DESC, id",
            {"cut": now - self.config.offline_after_s},
            limit,
            offset,
        )
        items = [
            OfflineDevice(
                device_id=r["id"],
                account_id=r["account_id"],
                vendor=r["vendor"],
                model=r["model"],
                last_seen=iso(r["last_seen"]),
                offline_for_s=None if r["last_seen"] is None else round(now - r["last_seen"], 1),
                reason="never seen"
                if r["last_seen"] is None
                else "unreachable"
                if r["reach"] == "down"
                else "silent",
            )
            for r in rows
        ]
        return Page(total=total, limit=limit, offset=offset, items=items)

    def unregistered(self, limit: int = 50, offset: int = 0) -> Page[UnregisteredDevice]:
        """Devices whose newest registration record shows no registered line, newest first."""
        # CROSS JOIN: each index row's state (a key lookup) filters before the registry is read.
        total, rows = self._paged(
            f"""WITH {ACTIVE_DEVICES}
            SELECT a.id, a.account_id, a.model, l.observed_at, l.fields
            FROM latest l CROSS JOIN device_state s
                ON s.device_id = l.device_id AND s.account_id = l.account_id AND s.reg_state = 'unregistered'
            JOIN active a ON a.id = l.device_id AND a.account_id = l.account_id
            WHERE l.slot = 'registration'""",
            "observed_at DESC, id",
            {},
            limit,
            offset,
        )
        items = [
            UnregisteredDevice(
                device_id=r["id"],
                account_id=r["account_id"],
                model=r["model"],
                reported_at=iso(r["observed_at"]),
                lines={k: v for k, v in json.loads(r["fields"]).items() if k.endswith("state")},
            )
            for r in rows
        ]
        return Page(total=total, limit=limit, offset=offset, items=items)

    def poor_quality(self, limit: int = 50, offset: int = 0, below: float | None = None) -> Page[QualityRow]:
        """Devices whose newest call-quality record has MOS below `below`, worst first."""
        total, rows = self._paged(
            f"""WITH {ACTIVE_DEVICES}
            SELECT a.id, a.account_id, a.model, l.firmware, l.observed_at, l.fields, s.mos
            FROM latest l CROSS JOIN device_state s
                ON s.device_id = l.device_id AND s.account_id = l.account_id AND s.mos < :below
            JOIN active a ON a.id = l.device_id AND a.account_id = l.account_id
            WHERE l.slot = 'call_quality'""",
            "mos, id",
            {"below": self.config.poor_mos if below is None else below},
            limit,
            offset,
        )
        items = []
        for r in rows:
            fields = json.loads(r["fields"])
            items.append(
                QualityRow(
                    device_id=r["id"],
                    account_id=r["account_id"],
                    model=r["model"],
                    firmware=r["firmware"],
                    observed_at=iso(r["observed_at"]),
                    mos=_number(fields.get("mos")),
                    jitter_ms=_number(fields.get("jitter_ms")),
                    loss_pct=_number(fields.get("loss_pct")),
                )
            )
        return Page(total=total, limit=limit, offset=offset, items=items)

    def firmware(self, model: str | None = None) -> list[ModelFirmware]:
        """Per model, how many devices run each firmware version (their newest report)."""
        rows = self.db.rows(
            f"""WITH {ACTIVE_DEVICES}
            SELECT a.model, s.version, count(*) AS n
            FROM active a LEFT JOIN device_state s ON s.device_id = a.id AND s.account_id = a.account_id
            WHERE :model IS NULL OR a.model = :model
            GROUP BY 1, 2""",
            {"model": model},
        )
        by_model: dict[str, list[VersionCount]] = {}
        for r in rows:
            by_model.setdefault(r["model"], []).append(
                VersionCount(version=r["version"] if r["version"] is not None else "unknown", devices=r["n"])
            )
        return [
            ModelFirmware(
                model=m,
                devices=sum(v.devices for v in versions),
                versions=sorted(
                    versions, key=lambda v: (version_key(v.version) or (), v.version), reverse=True
                ),
            )
            for m, versions in sorted(by_model.items())
        ]

    def device(self, device_id: str) -> DeviceDetail | None:
        """The device's registry entry and newest record of each kind; None if it is not a
        device of an active account."""
        found = self.db.rows(
            "SELECT d.* FROM reg.devices d JOIN reg.accounts a ON a.id = d.account_id"
            " WHERE d.id = ? AND a.status = 'active'",
            (device_id,),
        )
        if not found:
            return None
        d = found[0]
        # Only the current owner's records: a device moved to another customer shows
        # nothing of the previous one's.
        rows = self.db.rows(
            "SELECT slot, observed_at, firmware, fields FROM latest WHERE device_id = ? AND account_id = ?"
            " ORDER BY slot",
            (device_id, d["account_id"]),
        )
        seen = [r["observed_at"] for r in rows if r["slot"] != "reachability"]
        last_seen = max(seen) if seen else None
        return DeviceDetail(
            device_id=d["id"],
            account_id=d["account_id"],
            vendor=d["vendor"],
            model=d["model"],
            profile=d["profile"],
            transport=d["transport"],
            address=d["address"],
            last_seen=iso(last_seen),
            online=last_seen is not None and last_seen >= self._cut(),
            latest=[
                LatestRecord(
                    kind=r["slot"],
                    observed_at=iso(r["observed_at"]),
                    firmware=r["firmware"],
                    fields=json.loads(r["fields"]),
                )
                for r in rows
            ],
        )

    def history(
        self, device_id: str, kind: str | None = None, limit: int = 100, before: str | None = None
    ) -> History | None:
        """The device's records, newest first, a page at a time (keyset: `before` is the
        `next` of the previous page)."""
        detail = self.device(device_id)
        if detail is None:
            return None
        _page_args(limit, 0)
        cursor_ts, cursor_id = float("inf"), 0
        if before:
            try:
                ts, _, row_id = before.partition("_")
                cursor_ts, cursor_id = float(ts), int(row_id)
            except ValueError:
                raise ValueError(
                    f"before: {before!r} is not a cursor from a previous page's `next`"
                ) from None
        rows = self.db.rows(
            """SELECT id, kind, observed_at, firmware, source, fields FROM telemetry
            WHERE device_id = :device AND account_id = :account AND (:kind IS NULL OR kind = :kind)
              AND (observed_at < :ts OR (observed_at = :ts AND id < :id))
            ORDER BY observed_at DESC, id DESC LIMIT :limit""",
            {
                "device": device_id,
                "account": detail.account_id,
                "kind": kind,
                "ts": cursor_ts,
                "id": cursor_id or 2**62,
                "limit": limit,
            },
        )
        items = [
            HistoryRecord(
                kind=r["kind"],
                observed_at=iso(r["observed_at"]),
                firmware=r["firmware"],
                source=r["source"],
                fields=json.loads(r["fields"]),
            )
            for r in rows
        ]
        last = rows[-1] if len(rows) == limit else None
        return History(
            device_id=device_id, items=items, next=f"{last['observed_at']!r}_{last['id']}" if last else None
        )
