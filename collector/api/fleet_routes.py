"""Read endpoints for the NOC and the firmware team: fleet, devices, rollouts, alerts.

Handlers are plain functions: FastAPI runs them in its thread pool, so a query never
blocks the event loop that collects. Lists are paginated (`limit`, `offset`), history by
keyset (`before`). Only devices of active accounts are shown; any other device answers 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from collector.api.ports import Noc
from collector.core.records import Kind
from collector.views.fleet import MAX_PAGE
from collector.views.models import (
    DeviceDetail,
    FleetSummary,
    History,
    ModelFirmware,
    OfflineDevice,
    Page,
    QualityRow,
    UnregisteredDevice,
)
from collector.views.rollout import RolloutDevice, RolloutReport, State, UnknownModel, rollout_status
from provisioning.models import normalize_mac

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="items per page")]
Offset = Annotated[int, Query(ge=0)]
Since = Annotated[datetime | None, Query(description="when the rollout began (default: first report)")]
Grace = Annotated[float, Query(gt=0, description="seconds; not upgraded by then: failed")]
Window = Annotated[float, Query(gt=0, description="seconds; cohort window around each upgrade")]
Reboots = Annotated[int, Query(ge=1, description="reboots after upgrading that make it regressed")]


def _device_id(raw: str) -> str:
    try:
        return normalize_mac(raw)
    except ValueError as exc:
        raise HTTPException(422, f"device_id: {exc}") from None


def fleet_router(noc: Noc, guard: Any) -> APIRouter:
    """`guard`: the dependency every route of the router needs (the `read` scope)."""
    views = noc.views
    router = APIRouter(prefix="/v1", dependencies=[Depends(guard)])

    @router.get("/fleet/summary", response_model=FleetSummary, tags=["fleet"])
    def summary() -> FleetSummary:
        return views.summary()

    @router.get("/fleet/offline", response_model=Page[OfflineDevice], tags=["fleet"])
    def offline(limit: Limit = 50, offset: Offset = 0) -> Page[OfflineDevice]:
        return views.offline(limit, offset)

    @router.get("/fleet/unregistered", response_model=Page[UnregisteredDevice], tags=["fleet"])
    def unregistered(limit: Limit = 50, offset: Offset = 0) -> Page[UnregisteredDevice]:
        return views.unregistered(limit, offset)

    @router.get("/fleet/poor-quality", response_model=Page[QualityRow], tags=["fleet"])
    def poor_quality(
        limit: Limit = 50,
        offset: Offset = 0,
        below: Annotated[float | None, Query(gt=0, le=5, description="MOS threshold")] = None,
    ) -> Page[QualityRow]:
        return views.poor_quality(limit, offset, below)

    @router.get("/fleet/firmware", response_model=list[ModelFirmware], tags=["fleet", "firmware"])
    def firmware(model: str | None = None) -> list[ModelFirmware]:
        return views.firmware(model)

    @router.get("/devices/{device_id}", response_model=DeviceDetail, tags=["devices"])
    def device(device_id: str) -> DeviceDetail:
        found = views.device(_device_id(device_id))
        if found is None:
            raise HTTPException(404, f"no device {device_id} in an active account")
        return found

    @router.get("/devices/{device_id}/history", response_model=History, tags=["devices"])
    def history(
        device_id: str,
        kind: Kind | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        before: Annotated[str | None, Query(description="the `next` of the previous page")] = None,
    ) -> History:
        try:
            found = views.history(_device_id(device_id), kind.value if kind else None, limit, before)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if found is None:
            raise HTTPException(404, f"no device {device_id} in an active account")
        return found

    def _rollout(
        model: str,
        target: str,
        since: datetime | None,
        grace_s: float,
        window_s: float,
        reboots: int,
        list_limit: int = 50,
    ) -> Any:
        key = (model, target, since, grace_s, window_s, reboots, list_limit)
        try:
            return noc.rollouts.get(
                key,
                lambda: rollout_status(
                    views.db,
                    model,
                    target,
                    since=since,
                    grace_s=grace_s,
                    window_s=window_s,
                    reboot_limit=reboots,
                    list_limit=list_limit,
                ),
            )
        except UnknownModel as exc:
            raise HTTPException(404, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    @router.get("/rollouts/status", response_model=RolloutReport, tags=["firmware"])
    def rollout(
        model: str,
        target: str,
        since: Since = None,
        grace_s: Grace = 86400,
        window_s: Window = 86400,
        reboots: Reboots = 3,
        list_limit: Annotated[int, Query(ge=0, le=MAX_PAGE)] = 50,
    ) -> RolloutReport:
        report: RolloutReport = _rollout(model, target, since, grace_s, window_s, reboots, list_limit).report
        return report

    @router.get("/rollouts/devices", response_model=Page[RolloutDevice], tags=["firmware"])
    def rollout_devices(
        model: str,
        target: str,
        state: State | None = None,
        since: Since = None,
        grace_s: Grace = 86400,
        window_s: Window = 86400,
        reboots: Reboots = 3,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[RolloutDevice]:
        total, items = _rollout(model, target, since, grace_s, window_s, reboots).page(state, limit, offset)
        return Page(total=total, limit=limit, offset=offset, items=items)

    @router.get("/alerts", tags=["alerts"])
    def alerts() -> list[dict[str, Any]]:
        """Alerts firing now (empty when alerts are not enabled)."""
        return noc.alerts.firing() if noc.alerts is not None else []

    return router
