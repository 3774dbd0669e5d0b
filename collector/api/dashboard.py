"""The NOC dashboard (static HTML/JS/CSS shipped in the package: no build step, no CDN)
and /metrics."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST

from collector.api.ports import Noc

STATIC = Path(str(resources.files("collector.api").joinpath("static")))


def mount_dashboard(app: FastAPI, noc: Noc, metrics_guard: Any) -> None:
    """The page and its static files need no token (they hold no data); /metrics needs the
    `read` scope unless the config opens it."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @router.get("/dashboard.json")
    def settings() -> dict[str, Any]:
        """What the page needs to know before its first API call."""
        return {
            "refresh_s": noc.config.views.refresh_s,
            "auth_reads": noc.config.api.auth_reads,
            "offline_after_s": noc.config.views.offline_after_s,
            "poor_mos": noc.config.views.poor_mos,
            "alerts": noc.alerts is not None,
        }

    @router.get("/metrics", dependencies=[Depends(metrics_guard)])
    def metrics() -> Response:
        return Response(noc.metrics_exposition(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
