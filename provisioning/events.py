"""Lifecycle events the registry publishes and the collector reacts to.

Events are rows in the registry database, so a collector in another process sharing the
data dir sees them by polling `Registry.events_since`; in-process listeners are also
called synchronously, which is what makes a status change take effect at once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from provisioning.models import AccountStatus


class EventType(StrEnum):
    ACCOUNT_ACTIVATED = "AccountActivated"
    ACCOUNT_INACTIVE = "AccountInactive"
    ACCOUNT_REVOKED = "AccountRevoked"
    ACCOUNT_REACTIVATED = "AccountReactivated"
    DEVICE_ADDED = "DeviceAdded"
    DEVICE_UPDATED = "DeviceUpdated"
    DEVICE_REMOVED = "DeviceRemoved"
    DEVICE_DEBUG_WINDOW = "DeviceDebugWindow"


class LifecycleEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    at: datetime
    type: EventType
    account_id: str
    device_id: str | None = None

    @property
    def stops_collection(self) -> bool:
        return self.type in (EventType.ACCOUNT_INACTIVE, EventType.ACCOUNT_REVOKED, EventType.DEVICE_REMOVED)


def event_for_transition(old: AccountStatus | None, new: AccountStatus) -> EventType | None:
    """The event a status change emits; None when nothing changed."""
    if old == new:
        return None
    if new is AccountStatus.REVOKED:
        return EventType.ACCOUNT_REVOKED
    if new is AccountStatus.INACTIVE:
        return EventType.ACCOUNT_INACTIVE
    if old is None:
        return EventType.ACCOUNT_ACTIVATED
    return EventType.ACCOUNT_REACTIVATED
