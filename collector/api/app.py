"""The deactivation endpoints. Token-authenticated; idempotent by caller-supplied request id.

POST /v1/deactivations answers 202 at once with a receipt id; the work runs in the
background and GET /v1/receipts/{id} returns the receipt when it is done.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from collector.api.dashboard import mount_dashboard
from collector.api.fleet_routes import fleet_router
from collector.api.ports import Deactivations, Noc
from collector.core.errors import UnknownDevice
from provisioning.models import normalize_mac
from provisioning.receipts import Action, ConflictingRequest, Receipt
from provisioning.registry import UnknownAccount

MAX_BODY = 16 * 1024
READ_PREFIXES = ("/v1/fleet/", "/v1/devices/", "/v1/rollouts/", "/v1/alerts")


class DeactivationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="Caller-chosen id; retrying with the same id is safe.",
    )
    account_id: str = Field(min_length=1, max_length=64)
    action: Action
    device_id: str | None = Field(default=None, description="Only with action remove-device.")
    reason: str = Field(default="", max_length=500)


class Accepted(BaseModel):
    receipt_id: str
    status: str
    receipt_url: str


def create_app(deactivator: Deactivations, token: str, noc: Noc | None = None) -> FastAPI:
    app = FastAPI(
        title="hookflash",
        version="1",
        description="Deactivation hooks: stop collection, erase per policy, get a receipt. "
        "Fleet, device, rollout and alert views for the NOC and the firmware team.",
    )
    background: set[asyncio.Task[Receipt]] = set()

    def needs_token(path: str, method: str) -> bool:
        """Deactivations and receipts always; reads and /metrics as configured."""
        if noc is not None and method == "GET":
            if path.startswith(READ_PREFIXES):
                return noc.config.api.auth_reads
            if path == "/metrics":
                return noc.config.api.auth_metrics
        return path.startswith("/v1/")

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Authenticate before the body is read, and refuse oversized bodies unread."""
        if needs_token(request.url.path, request.method):
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), token.encode()):
                return JSONResponse(
                    {"detail": "missing or wrong bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if int(request.headers.get("content-length") or 0) > MAX_BODY:
                return JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, status_code=413)
        return await call_next(request)

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), token.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    auth = [Depends(authorized)]

    @app.post("/v1/deactivations", status_code=202, response_model=Accepted, dependencies=auth)
    async def deactivate(body: DeactivationRequest, response: Response) -> Accepted:
        device_id = None
        if (body.action is Action.REMOVE_DEVICE) != (body.device_id is not None):
            raise HTTPException(422, "device_id is required with action remove-device, and only then")
        try:
            if body.device_id is not None:
                device_id = normalize_mac(body.device_id)
            receipt, created = await asyncio.to_thread(
                deactivator.request, body.action, body.account_id, body.reason, body.request_id, device_id
            )
        except (UnknownAccount, UnknownDevice) as exc:
            raise HTTPException(404, str(exc)) from None
        except ConflictingRequest as exc:
            raise HTTPException(409, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if created:
            task = asyncio.create_task(deactivator.process(receipt))
            background.add(task)
            task.add_done_callback(background.discard)
        else:
            response.status_code = 200  # a retry: same receipt, nothing done twice
        return Accepted(
            receipt_id=receipt.id, status=receipt.status.value, receipt_url=f"/v1/receipts/{receipt.id}"
        )

    @app.get("/v1/receipts/{receipt_id}", dependencies=auth)
    async def get_receipt(receipt_id: str) -> dict[str, Any]:
        try:
            found = await asyncio.to_thread(deactivator.receipts.get, receipt_id)
            return found.model_dump(mode="json")
        except LookupError:
            raise HTTPException(404, f"no such receipt: {receipt_id}") from None

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    if noc is not None:
        app.include_router(fleet_router(noc))
        mount_dashboard(app, noc)
    return app
