"""Receipts for deactivation requests: idempotent by the caller's request id.

A receipt is created `pending` the moment a request is accepted (its id is what the
caller gets back at once) and completed with what stopped and what was erased.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from provisioning.database import Database, Row
from provisioning.pseudonyms import KEY_FILE, Pseudonyms
from provisioning.registry import Clock, Registry, open_registry_db, utcnow


class Action(StrEnum):
    SUSPEND = "suspend"
    REVOKE = "revoke"
    REACTIVATE = "reactivate"
    REMOVE_DEVICE = "remove-device"


class ReceiptStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class ConflictingRequest(ValueError):
    """The request id was already used for a different request."""


class Receipt(BaseModel):
    id: str
    request_id: str
    account_id: str
    device_id: str | None
    action: Action
    reason: str
    requested_at: datetime
    status: ReceiptStatus
    completed_at: datetime | None
    result: dict[str, Any]


def _receipt(row: Row) -> Receipt:
    return Receipt.model_validate({**dict(row), "result": json.loads(row["result"])})


class ReceiptBook:
    def __init__(
        self, location: Path | Database, clock: Clock = utcnow, *, key_path: Path | None = None
    ) -> None:
        """`location`: registry.db's path, or the registry's open database (whose
        pseudonym key is at `key_path`)."""
        self._clock = clock
        self._db = open_registry_db(location) if isinstance(location, Path) else location
        if key_path is None:
            if not isinstance(location, Path):
                raise ValueError("receipts in a database need the path of the registry's pseudonym key")
            key_path = location.with_name(KEY_FILE)
        self._pseudonym = Pseudonyms(key_path)
        self._registry: Registry | None = None  # the owner of a shared database (`of`)

    @classmethod
    def of(cls, registry: Registry) -> ReceiptBook:
        """The receipts kept with this registry (its database, its pseudonym key); the
        registry, whose connection the book uses, lives as long as the book."""
        book = cls(registry.db, key_path=registry.key_path)
        book._registry = registry
        return book

    def _names(self, value: str) -> tuple[str, str]:
        """`value` and the pseudonym it is kept under once its account has ended."""
        return value, self._pseudonym.known(value) or value

    def find(self, request_id: str) -> Receipt | None:
        """The receipt of a caller's request id, also once its account has ended."""
        row = self._db.one("SELECT * FROM receipts WHERE request_id IN (?, ?)", self._names(request_id))
        return None if row is None else _receipt(row)

    def open(
        self,
        action: Action,
        account_id: str,
        reason: str = "",
        request_id: str | None = None,
        device_id: str | None = None,
    ) -> tuple[Receipt, bool]:
        """The receipt for this request, and whether it was created now (False: a retry)."""
        request_id = request_id or uuid.uuid4().hex
        with self._db.transaction() as tx:
            row = tx.one("SELECT * FROM receipts WHERE request_id IN (?, ?)", self._names(request_id))
            created = row is None
            if created:
                receipt_id = f"rcpt_{uuid.uuid4().hex[:20]}"
                tx.run(
                    "INSERT INTO receipts (id, request_id, account_id, device_id, action, reason,"
                    " requested_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                    (
                        receipt_id,
                        request_id,
                        account_id,
                        device_id,
                        action.value,
                        reason,
                        self._clock().isoformat(),
                    ),
                )
                row = tx.one("SELECT * FROM receipts WHERE id = ?", (receipt_id,))
        receipt = _receipt(row)
        same_account = receipt.account_id in self._names(account_id)
        same_device = (
            receipt.device_id is None if device_id is None else receipt.device_id in self._names(device_id)
        )
        if receipt.action is not action or not same_account or not same_device:
            raise ConflictingRequest(f"request id {request_id!r} was already used for a different request")
        return receipt, created

    def finish(self, receipt_id: str, status: ReceiptStatus, result: dict[str, Any]) -> Receipt:
        self._db.run(
            "UPDATE receipts SET status = ?, completed_at = ?, result = ? WHERE id = ?",
            (status.value, self._clock().isoformat(), json.dumps(result, default=str), receipt_id),
        )
        return self.get(receipt_id)

    def progress(self, receipt_id: str, result: dict[str, Any]) -> Receipt:
        """Record what is done so far of a receipt that stays pending."""
        self._db.run(
            "UPDATE receipts SET result = ? WHERE id = ? AND status = 'pending'",
            (json.dumps(result, default=str), receipt_id),
        )
        return self.get(receipt_id)

    def get(self, receipt_id: str) -> Receipt:
        row = self._db.one("SELECT * FROM receipts WHERE id = ?", (receipt_id,))
        if row is None:
            raise LookupError(f"no such receipt: {receipt_id!r}")
        return _receipt(row)

    def for_account(self, account_id: str) -> list[Receipt]:
        rows = self._db.query(
            "SELECT * FROM receipts WHERE account_id IN (?, ?) ORDER BY requested_at", self._names(account_id)
        )
        return [_receipt(r) for r in rows]

    def pending(self) -> list[Receipt]:
        rows = self._db.query("SELECT * FROM receipts WHERE status = 'pending'")
        return [_receipt(r) for r in rows]
