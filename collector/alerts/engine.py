"""The alert engine: evaluates the rules every `interval_s`, remembers what fires, and
sends one notice when an alert starts and one when it clears.

State lives in `alerts.db` in the data dir (so a restart does not repeat notices), next
to an outbox for the webhook notices: the same signed, retried, at-least-once delivery as
the deactivation webhooks (provisioning.outbox), in a file of its own so the two
dispatchers never take each other's entries.

Privacy: only devices of active accounts are evaluated. When an account stops being
active its alerts are dropped without a notice, and its state and queued or sent notices
are deleted (`forget`), so nothing about it is sent or kept afterwards. Alerts about
hookflash's own remote sinks (`sink_unauthorized`, `sink_down`) concern no account.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.alerts import rules as R
from collector.alerts.state import ALERTS, drop_account
from collector.config.alerts import (
    AlertsConfig,
    FirmwareRegressedRule,
    MosBelowRule,
    OfflineRule,
    RegistrationLostRule,
    Rule,
    SinkDownRule,
    SinkUnauthorizedRule,
)
from collector.config.snmp import from_env
from collector.core.interfaces import SinkHealth
from collector.views.db import ViewsDb
from collector.webhooks import WebhookDispatcher, WebhookTarget
from provisioning.db import open_db, transaction
from provisioning.outbox import Outbox

log = logging.getLogger(__name__)
FIRING, RESOLVED = "alert.firing", "alert.resolved"
SENT_KEPT_S = 7 * 86400  # delivered notices are deleted after this



def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _subject(key: str, account_id: str, model: str) -> dict[str, str | None]:
    """What an alert is about: a device (of an account) or one of hookflash's sinks."""
    if key.startswith(R.SINK):
        return {"device_id": None, "account_id": None, "model": None, "sink": key[len(R.SINK) :]}
    return {"device_id": key, "account_id": account_id, "model": model, "sink": None}


@dataclass(frozen=True)
class Notice:
    event: str
    payload: dict[str, Any]
    account_id: str


class AlertEngine:
    def __init__(
        self,
        config: AlertsConfig,
        views: ViewsDb,
        path: Path,
        allows: Callable[[str], bool],
        clock: Callable[[], float] = time.time,
        sinks: Callable[[], Sequence[SinkHealth]] = tuple,
    ) -> None:
        """`allows(device_id)`: is the device provisioned, with an active account (the gate).
        `sinks()`: how each remote sink's sending goes."""
        self.config = config
        self._sinks = sinks
        self._views = views
        self._allows = allows
        self._clock = clock
        self._lock = threading.Lock()
        self._db = open_db(path, ALERTS, "secure_delete=ON")  # what is forgotten is zeroed
        self.outbox = Outbox(path, ALERTS)
        self._mos = {r.name: R.MosTracker(r) for r in config.rules if isinstance(r, MosBelowRule)}
        self.notices_sent = 0
        self.rounds = 0  # evaluations completed (tests wait for rounds, not for time)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- evaluating ------------------------------------------------------------------------

    def _hits(self, rule: Rule, now: float) -> dict[str, R.Firing]:
        if isinstance(rule, OfflineRule):
            return R.offline(self._views, rule, now)
        if isinstance(rule, RegistrationLostRule):
            return R.registration_lost(self._views, rule)
        if isinstance(rule, FirmwareRegressedRule):
            return R.firmware_regressed(self._views, rule)
        if isinstance(rule, SinkUnauthorizedRule):
            return R.sink_unauthorized(self._sinks())
        if isinstance(rule, SinkDownRule):
            return R.sink_down(self._sinks(), rule)
        return self._mos[rule.name].evaluate(self._views)

    def _allowed(self, subject: str) -> bool:
        """A sink, or a device of an active account: what may be alerted on."""
        return subject.startswith(R.SINK) or self._allows(subject)

    def evaluate(self) -> list[Notice]:
        """One round: compare what holds now with what was firing; send the differences."""
        now = self._clock()
        for tracker in self._mos.values():
            tracker.forget({d for d in tracker.poor if not self._allows(d)})
        hits = {rule.name: self._hits(rule, now) for rule in self.config.rules}
        rules = {rule.name: rule for rule in self.config.rules}
        notices: list[Notice] = []
        with self._lock:
            held = {(r[0], r[1]) for r in self._db.execute("SELECT rule, device_id FROM alert_state")}
        cleared = {d for name, d in held if name not in hits or d not in hits[name]}
        active = R.still_active(self._views, {d for d in cleared if not d.startswith(R.SINK)})
        with transaction(self._db, self._lock) as db:
            known = {(r["rule"], r["device_id"]): r for r in db.execute("SELECT * FROM alert_state")}
            for (name, device_id), row in known.items():
                rule = rules.get(name)
                if rule is not None and device_id in hits[name]:
                    continue
                db.execute("DELETE FROM alert_state WHERE rule = ? AND device_id = ?", (name, device_id))
                # Cleared: a recovery notice, unless the rule left the config or the device's
                # account stopped being active (then nothing more is said about it).
                if (
                    rule is not None
                    and row["state"] == "firing"
                    and (device_id.startswith(R.SINK) or (device_id in active and self._allows(device_id)))
                ):
                    notices.append(self._notice(RESOLVED, rule, device_id, row, now))
            for name, devices in hits.items():
                rule = rules[name]
                for device_id, firing in devices.items():
                    row = known.get((name, device_id))
                    if not self._allowed(device_id):
                        continue
                    if row is None:
                        state = "firing" if rule.hold_s <= 0 else "pending"
                        db.execute(
                            "INSERT INTO alert_state VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (
                                name,
                                device_id,
                                firing.account_id,
                                firing.model,
                                state,
                                now,
                                json.dumps(firing.detail, sort_keys=True),
                            ),
                        )
                        if state == "firing":
                            notices.append(self._notice(FIRING, rule, device_id, None, now, firing))
                    elif row["state"] == "pending" and now - row["since"] >= rule.hold_s:
                        db.execute(
                            "UPDATE alert_state SET state = 'firing' WHERE rule = ? AND device_id = ?",
                            (name, device_id),
                        )
                        notices.append(self._notice(FIRING, rule, device_id, row, now, firing))
            db.execute(
                "DELETE FROM outbox WHERE status = 'delivered' AND delivered_at < ?", (now - SENT_KEPT_S,)
            )
        for notice in notices:
            self._send(notice)
        self.rounds += 1
        return notices

    def _notice(
        self, event: str, rule: Rule, device_id: str, row: Any, now: float, firing: R.Firing | None = None
    ) -> Notice:
        since = row["since"] if row is not None else now
        account = firing.account_id if firing else row["account_id"]
        payload: dict[str, Any] = {
            "event": event,
            "alert_id": f"{rule.name}:{device_id}:{since:.3f}",
            "rule": rule.name,
            "type": rule.type,
            **_subject(device_id, account, firing.model if firing else row["model"]),
            "since": _iso(since),
            "at": _iso(now),
            "detail": firing.detail if firing else json.loads(row["detail"]),
        }
        if event == RESOLVED:
            payload["duration_s"] = round(now - since, 1)
        return Notice(event, payload, account)

    def _send(self, notice: Notice) -> None:
        p = notice.payload
        if p["sink"] is not None:
            if notice.event == FIRING:
                log.error("alert %s FIRING for sink %s: %s", p["rule"], p["sink"], json.dumps(p["detail"]))
            else:
                log.warning(
                    "alert %s RESOLVED for sink %s after %.0fs", p["rule"], p["sink"], p["duration_s"]
                )
        elif notice.event == FIRING:
            log.warning(
                "alert %s FIRING for device %s (%s, account %s): %s",
                p["rule"],
                p["device_id"],
                p["model"],
                p["account_id"],
                json.dumps(p["detail"], sort_keys=True),
            )
        else:
            log.info(
                "alert %s RESOLVED for device %s after %.0fs", p["rule"], p["device_id"], p["duration_s"]
            )
        for webhook in self.config.webhooks:
            self.outbox.enqueue(webhook.name, notice.event, p, notice.account_id)
        self.notices_sent += 1

    # -- reading and forgetting ------------------------------------------------------------

    def firing(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM alert_state WHERE state = 'firing' ORDER BY since DESC, rule, device_id"
            ).fetchall()
        types = {r.name: r.type for r in self.config.rules}
        return [
            {
                "rule": r["rule"],
                "type": types.get(r["rule"], "unknown"),
                **_subject(r["device_id"], r["account_id"], r["model"]),
                "since": _iso(r["since"]),
                "detail": json.loads(r["detail"]),
            }
            for r in rows
            if self._allowed(r["device_id"])
        ]

    def firing_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT rule, count(*) FROM alert_state WHERE state = 'firing' GROUP BY rule"
            ).fetchall()
        counts = {r.name: 0 for r in self.config.rules}
        counts.update({r[0]: r[1] for r in rows if r[0] in counts})
        return counts

    def forget(self, account_id: str, device_id: str | None = None) -> None:
        """The account (or one device of it) stopped: drop its alerts and its notices, queued
        or sent, without a word."""
        with transaction(self._db, self._lock) as db:
            if device_id is None:
                drop_account(db, account_id)
            else:
                db.execute("DELETE FROM alert_state WHERE device_id = ?", (device_id,))
                db.execute(
                    "DELETE FROM outbox WHERE account_id = ? AND payload->>'device_id' = ?",
                    (account_id, device_id),
                )

    def forget_all_but(self, active_accounts: set[str]) -> int:
        """At start: drop the alerts and queued notices of every account not active now (it
        stopped while hookflash was down, so no event told us). Sink alerts (no account) stay."""
        with transaction(self._db, self._lock) as db:
            accounts = {r[0] for r in db.execute("SELECT DISTINCT account_id FROM alert_state")}
            accounts |= {r[0] for r in db.execute("SELECT DISTINCT account_id FROM outbox")}
            stopped = [a for a in accounts if a and a not in active_accounts]
            for account in stopped:
                drop_account(db, account)
        return len(stopped)

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.evaluate)
            except Exception:
                log.exception("alert evaluation failed; will try again next interval")
            await asyncio.sleep(self.config.interval_s)

    def dispatcher(self) -> WebhookDispatcher | None:
        if not self.config.webhooks:
            return None
        targets = {
            w.name: WebhookTarget(
                w.name,
                w.url,
                from_env(w.secret_env, f"alerts.webhooks.{w.name}.secret_env").encode(),
                w.timeout_s,
            )
            for w in self.config.webhooks
        }
        return WebhookDispatcher(self.outbox, targets, audit=lambda *_args: None, poll_s=0.2)
