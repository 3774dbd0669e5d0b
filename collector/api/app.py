"""The deactivation endpoints (and, with a NOC, the views and the dashboard). Every route
but /healthz and the dashboard's static page needs a bearer token with its scope
(collector/api/auth.py); deactivations are idempotent by caller-supplied request id.

POST /v1/deactivations answers 202 at once with a receipt id; the work runs in the
background and GET /v1/receipts/{id} returns the receipt when it is done.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from collector.api.auth import Auth
from collector.api.dashboard import mount_dashboard
from collector.api.fleet_routes import fleet_router
from collector.api.ports import Deactivations, Noc
from collector.config import ApiConfig, ResolvedToken
from collector.core.errors import UnknownDevice
from provisioning.models import normalize_mac
from provisioning.receipts import Action, ConflictingRequest, Receipt
from provisioning.registry import UnknownAccount

log = logging.getLogger(__name__)
_BUSY = re.compile(r"locked|busy")  # SQLite's words for a database another process holds

MAX_BODY = 16 * 1024


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
    # No control characters: a reason is shown in logs and receipts (and PostgreSQL text
    # cannot hold a NUL at all).
    reason: str = Field(default="", max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")


class Accepted(BaseModel):
    receipt_id: str
    status: str
    receipt_url: str


def create_app(
    deactivator: Deactivations, tokens: Sequence[ResolvedToken], noc: Noc | None = None
) -> FastAPI:
    api = noc.config.api if noc is not None else ApiConfig()
    auth = Auth(tokens, api.rate_burst, api.rate_per_s)
    app = FastAPI(
        title="hookflash",
        version="1",
        description="Deactivation hooks: stop collection, erase per policy, get a receipt. "
        "Fleet, device, rollout and alert views for the NOC and the firmware team.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    background: set[asyncio.Task[Receipt]] = set()

    async def unavailable(_request: Request, exc: Exception) -> Response:
        """The registry's database cannot be used right now (locked, unreachable): the
        caller retries; nothing was accepted. Any other error of the same type (a missing
        table, a read-only file) is a fault, answered 500 and logged as one."""
        if isinstance(exc, sqlite3.OperationalError) and not _BUSY.search(str(exc)):
            log.error("API request failed: %s", exc, exc_info=exc)
            return JSONResponse({"detail": "internal error"}, status_code=500)
        log.error("API request refused, the registry's database is unavailable: %s", str(exc)[:300])
        detail = "the registry's database is unavailable; nothing was done, retry later"
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})

    for kind in deactivator.unavailable:
        app.add_exception_handler(kind, unavailable)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Before any body is read: a request that carries one must come with a valid token
        (whatever its path; the route's dependency then checks the scope), and no body
        over MAX_BODY is read at all."""
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            try:
                auth.caller(request.headers.get("authorization"))
            except HTTPException as exc:
                return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, status_code=413)
        return await call_next(request)

    deactivating = auth.needs("deactivate")
    docs = auth.needs("read", open_=api.open_docs)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(docs)])
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(docs)])
    async def swagger() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="hookflash API")

    @app.post("/v1/deactivations", status_code=202, response_model=Accepted)
    async def deactivate(
        body: DeactivationRequest,
        response: Response,
        caller: ResolvedToken = Depends(deactivating),  # noqa: B008 (a local: Annotated cannot name it)
    ) -> Accepted:
        auth.limit(caller)
        if body.action is Action.REACTIVATE and "admin" not in caller.scopes:
            raise HTTPException(403, f"token {caller.name!r}: reactivation needs the 'admin' scope")
        device_id = None
        if (body.action is Action.REMOVE_DEVICE) != (body.device_id is not None):
            raise HTTPException(422, "device_id is required with action remove-device, and only then")
        try:
            if body.device_id is not None:
                device_id = normalize_mac(body.device_id)
            reason = f"{body.reason} (via API token {caller.name})".strip()
            receipt, created = await asyncio.to_thread(
                deactivator.request, body.action, body.account_id, reason, body.request_id, device_id
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

    @app.get("/v1/receipts/{receipt_id}", dependencies=[Depends(deactivating)])
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
        app.include_router(fleet_router(noc, auth.needs("read", open_=not api.auth_reads)))
        mount_dashboard(app, noc, auth.needs("read", open_=not api.auth_metrics))
    return app
