"""`[views]`: what the fleet views call offline and poor, and how often the page refreshes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ViewsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A device is offline when nothing from it was stored for this long.
    offline_after_s: float = Field(default=600, gt=0)
    # Call quality is poor when the newest MOS is below this.
    poor_mos: float = Field(default=3.5, gt=1, le=5)
    # The dashboard polls the API this often (seconds).
    refresh_s: float = Field(default=5, ge=0.2, le=3600)
