"""P6: everything held about an account, as one JSON document (credentials excluded)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from collector.alerts.state import held_for_account
from collector.runtime.paths import alerts_path
from collector.sinks.sqlite import TelemetryQueries
from provisioning.outbox import Outbox
from provisioning.receipts import ReceiptBook
from provisioning.registry import Registry

FORMAT_VERSION = 1


def export_account(registry: Registry, stores: Sequence[TelemetryQueries], account_id: str) -> dict[str, Any]:
    account = registry.account(account_id)  # raises UnknownAccount
    devices = [d.model_dump(mode="json", exclude={"credentials"}) for d in registry.devices(account_id)]
    telemetry = [r.model_dump(mode="json") for store in stores for r in store.query(account_id=account_id)]
    audit = registry.audit_entries(account_id)
    document: dict[str, Any] = {
        "format": "hookflash-privacy-export",
        "version": FORMAT_VERSION,
        "exported_at": datetime.now(UTC).isoformat(),
        "account": account.model_dump(mode="json"),
        "devices": devices,
        "telemetry": telemetry,
        "quarantine": [
            {**vars(q), "at": q.at.isoformat()}
            for store in stores
            for q in store.quarantined(limit=1_000_000, account_id=account_id)
        ],
        "audit": audit,
        "receipts": [r.model_dump(mode="json") for r in ReceiptBook.of(registry).for_account(account_id)],
        "webhook_deliveries": [
            {k: v for k, v in e.items() if k != "payload"} for e in Outbox(registry.db).entries(account_id)
        ],
        "alerts": held_for_account(alerts_path(registry.data_dir), account_id),
    }
    registry.record_audit(
        "privacy.exported",
        {"devices": len(devices), "telemetry": len(telemetry), "audit": len(audit)},
        account_id=account_id,
    )
    return document
