"""What the registry keeps of an account once its data has ended (P5).

`forget_account` runs in one registry transaction:

- the account's device rows (MAC, address, SIP addresses, credential set name) are deleted;
- its lifecycle events, audit entries and receipts are kept, de-identified: every
  identifier in them (account id, MACs, addresses, request ids) becomes its keyed
  pseudonym, and free text (reasons) is dropped;
- webhook notices about it that were delivered are deleted (one still waiting to be
  delivered is kept until then: the account is only forgotten once none is left);
- the account row keeps its status and dates under the pseudonym, with `ended_at`, so
  the number of accounts per status stays right.

With `secure_delete` on (registry.db's connections set it) the old bytes are zeroed in
the file; the caller checkpoints the WAL so they leave it too (`Database.compact`). On
PostgreSQL the old row versions are dead tuples until autovacuum reclaims them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from provisioning.database import Tx, contains, in_list, json_field_is_null

_FREE_TEXT = frozenset({"reason", "error", "last_error"})
_MIN_SUBSTRING = 6  # identifiers this long are also replaced inside longer strings


def _identifiers(tx: Tx, account_id: str) -> set[str]:
    found = {account_id}
    for row in tx.query("SELECT id, address, sip_aor FROM devices WHERE account_id = ?", (account_id,)):
        found.update([row[0], row[1], *row[2].split()])
    for table in ("events", "audit", "receipts"):
        found.update(
            r[0]
            for r in tx.query(
                f"SELECT DISTINCT device_id FROM {table} WHERE account_id = ? AND device_id IS NOT NULL",
                (account_id,),
            )
        )
    return {i for i in found if i}


class _Rewriter:
    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = dict(names)
        self._inner = sorted((n for n in names if len(n) >= _MIN_SUBSTRING), key=len, reverse=True)

    def text(self, value: str) -> str:
        if value in self.names:
            return self.names[value]
        for name in self._inner:
            if name in value:
                value = value.replace(name, self.names[name])
        return value

    def value(self, value: Any, key: str = "") -> Any:
        if key in _FREE_TEXT and isinstance(value, str):
            return ""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(k): self.value(v, k) for k, v in value.items()}
        return value

    def column(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)


def forget_account(tx: Tx, pseudonym: Callable[[str], str], account_id: str, now: datetime) -> dict[str, int]:
    """De-identify one account in the caller's transaction; counts of what was done."""
    idents = _identifiers(tx, account_id)
    rewrite = _Rewriter({i: pseudonym(i) for i in idents})
    anon = pseudonym(account_id)
    counts = {"devices": tx.run("DELETE FROM devices WHERE account_id = ?", (account_id,))}

    events = tx.query("SELECT id, device_id FROM events WHERE account_id = ?", (account_id,))
    tx.runmany(
        "UPDATE events SET account_id = ?, device_id = ? WHERE id = ?",
        [(anon, rewrite.column(r[1]), r[0]) for r in events],
    )
    counts["events"] = len(events)

    device_ids = sorted(idents - {account_id})
    not_yet = json_field_is_null(tx, "detail", "deidentified")
    audit = tx.query(
        f"SELECT id, account_id, device_id, detail FROM audit WHERE {not_yet}"
        f" AND (account_id = ? OR device_id IN {in_list(len(device_ids))} OR {contains(tx, 'detail')})",
        (account_id, *device_ids, json.dumps(account_id)),
    )
    rows = []
    for row in audit:
        detail = rewrite.value(json.loads(row[3]))
        rows.append((rewrite.column(row[1]), rewrite.column(row[2]), _detail(detail), row[0]))
    # The audit log's trigger lets a row change only like this, and only once.
    tx.runmany("UPDATE audit SET account_id = ?, device_id = ?, detail = ? WHERE id = ?", rows)
    counts["audit"] = len(rows)

    receipts = tx.query(
        "SELECT id, request_id, device_id, result FROM receipts WHERE account_id = ?", (account_id,)
    )
    tx.runmany(
        "UPDATE receipts SET account_id = ?, device_id = ?, request_id = ?, reason = '', result = ?"
        " WHERE id = ?",
        [
            (
                anon,
                rewrite.column(r[2]),
                pseudonym(r[1]),
                json.dumps(rewrite.value(json.loads(r[3])), default=str),
                r[0],
            )
            for r in receipts
        ],
    )
    counts["receipts"] = len(receipts)
    counts["notices"] = tx.run(
        "DELETE FROM outbox WHERE account_id = ? AND status != 'pending'", (account_id,)
    )
    tx.run("UPDATE accounts SET id = ?, ended_at = ? WHERE id = ?", (anon, now.isoformat(), account_id))
    return counts


def _detail(detail: Any) -> str:
    body = detail if isinstance(detail, dict) else {"value": detail}
    return json.dumps({**body, "deidentified": True}, sort_keys=True, default=str)
