"""What the API needs from the running service, declared here so the API depends on no
runtime module: the runtime's Deactivator and Observability fit these."""

from __future__ import annotations

from typing import Protocol

from collector.alerts.engine import AlertEngine
from collector.config import ServiceConfig
from collector.views.cache import ReportCache
from collector.views.fleet import FleetViews
from provisioning.receipts import Action, Receipt, ReceiptBook


class Deactivations(Protocol):
    """Accepts a deactivation request (a pending receipt at once) and carries it out."""

    @property
    def receipts(self) -> ReceiptBook: ...

    @property
    def unavailable(self) -> tuple[type[Exception], ...]:
        """What the registry's database raises while it cannot be used (answered 503)."""
        ...

    def request(
        self,
        action: Action,
        account_id: str,
        reason: str = "",
        request_id: str | None = None,
        device_id: str | None = None,
    ) -> tuple[Receipt, bool]: ...

    async def process(self, receipt: Receipt) -> Receipt: ...


class Noc(Protocol):
    """The read side: fleet views, rollout reports, alerts, self-metrics."""

    @property
    def config(self) -> ServiceConfig: ...

    @property
    def views(self) -> FleetViews: ...

    @property
    def rollouts(self) -> ReportCache: ...

    @property
    def alerts(self) -> AlertEngine | None: ...

    def metrics_exposition(self) -> bytes: ...
