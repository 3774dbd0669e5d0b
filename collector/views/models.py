"""What the views return: the API's response schemas and the CLI's JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    total: int = Field(description="matching items in all pages")
    limit: int
    offset: int
    items: list[T]


class FleetSummary(BaseModel):
    generated_at: datetime
    offline_after_s: float
    poor_mos: float
    devices: int = Field(description="provisioned devices of active accounts")
    online: int
    offline: int = Field(description="seen before, nothing stored for offline_after_s")
    never_seen: int
    registered: int
    unregistered: int
    poor_quality: int = Field(description="newest MOS below poor_mos")
    models: int
    accounts: dict[str, int] = Field(description="accounts per status")


class OfflineDevice(BaseModel):
    device_id: str
    account_id: str
    vendor: str
    model: str
    last_seen: datetime | None
    offline_for_s: float | None
    reason: Literal["never seen", "unreachable", "silent"]


class UnregisteredDevice(BaseModel):
    device_id: str
    account_id: str
    model: str
    reported_at: datetime
    lines: dict[str, Any]


class QualityRow(BaseModel):
    device_id: str
    account_id: str
    model: str
    firmware: str | None
    observed_at: datetime
    mos: float | None
    jitter_ms: float | None
    loss_pct: float | None


class VersionCount(BaseModel):
    version: str
    devices: int


class ModelFirmware(BaseModel):
    model: str
    devices: int
    versions: list[VersionCount] = Field(description="newest version first; 'unknown' when never reported")


class LatestRecord(BaseModel):
    kind: str
    observed_at: datetime
    firmware: str | None
    fields: dict[str, Any]


class DeviceDetail(BaseModel):
    device_id: str
    account_id: str
    vendor: str
    model: str
    profile: str
    transport: str
    address: str
    last_seen: datetime | None
    online: bool
    latest: list[LatestRecord] = Field(description="the newest record of each kind (change: of each event)")


class HistoryRecord(BaseModel):
    kind: str
    observed_at: datetime
    firmware: str | None
    source: str
    fields: dict[str, Any]


class History(BaseModel):
    device_id: str
    items: list[HistoryRecord]
    next: str | None = Field(description="pass as `before` for the next (older) page; null at the end")
