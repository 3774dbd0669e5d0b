"""Gate stage: only provisioned devices of active accounts get through (P1, P4, P8)."""

from collector.gate.gate import Gate

__all__ = ["Gate"]
