"""`[alerts]`: rules and where notices go, validated at load (unknown keys are errors)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Rule(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,47}$")

    @property
    def hold_s(self) -> float:
        """How long the condition must hold before the alert fires."""
        return 0.0


class OfflineRule(_Rule):
    """Nothing stored from a device (seen before) for `minutes`."""

    type: Literal["offline"]
    minutes: float = Field(gt=0)


class MosBelowRule(_Rule):
    """The mean MOS of a device's last `calls` call-quality records is below `threshold`."""

    type: Literal["mos_below"]
    threshold: float = Field(default=3.5, gt=1, le=5)
    calls: int = Field(default=5, ge=1, le=1000)


class RegistrationLostRule(_Rule):
    """A device's newest registration record shows no registered line, for `minutes`."""

    type: Literal["registration_lost"]
    minutes: float = Field(default=0, ge=0)

    @property
    def hold_s(self) -> float:
        return self.minutes * 60


class FirmwareRegressedRule(_Rule):
    """A device's newest firmware change went to an older version, and it still runs it."""

    type: Literal["firmware_regressed"]


class SinkUnauthorizedRule(_Rule):
    """A remote sink's writes are refused as unauthorized (401 / 403) or for an unknown bucket
    or org (404): they will not heal by themselves. Fires at once; clears on a write taken."""

    type: Literal["sink_unauthorized"]


class SinkDownRule(_Rule):
    """A remote sink's writes have failed, for any reason, for `minutes` (the spool holds
    what it could not send)."""

    type: Literal["sink_down"]
    minutes: float = Field(default=5, gt=0)


Rule = Annotated[
    OfflineRule
    | MosBelowRule
    | RegistrationLostRule
    | FirmwareRegressedRule
    | SinkUnauthorizedRule
    | SinkDownRule,
    Field(discriminator="type"),
]


class AlertWebhook(_Strict):
    """Where notices are POSTed, signed like the deactivation webhooks (HMAC-SHA256)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,31}$")
    url: str = Field(pattern=r"^https?://")
    secret_env: str
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class AlertsConfig(_Strict):
    enabled: bool = False
    interval_s: float = Field(default=30, ge=0.05, le=3600)
    rules: list[Rule] = []
    webhooks: list[AlertWebhook] = []

    @model_validator(mode="after")
    def _unique_names(self) -> AlertsConfig:
        for what, names in (
            ("rules", [r.name for r in self.rules]),
            ("webhooks", [w.name for w in self.webhooks]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what}: names must be unique, repeated: {', '.join(dupes)}")
        return self
