"""What the runtime hands each source (collector.core.interfaces.SourceContext): the
intake, the counters, and the registry questions a source may ask, answered by the gate."""

from __future__ import annotations

from collector.core.interfaces import Intake
from collector.core.records import Kind
from collector.core.stats import Stats
from collector.gate import Gate
from provisioning.models import Device, Transport


class RuntimeContext:
    def __init__(self, intake: Intake, stats: Stats, gate: Gate) -> None:
        self.intake = intake
        self.stats = stats
        self._gate = gate

    def may_collect(self, device_id: str) -> bool:
        return self._gate.allows(device_id)

    def allowed_kinds(self, device: Device) -> frozenset[Kind]:
        return self._gate.allowed_kinds(device)

    def device(self, device_id: str) -> Device | None:
        return self._gate.device(device_id)

    def devices(self, transport: Transport) -> list[Device]:
        return self._gate.devices(transport)
